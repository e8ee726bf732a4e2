"""The pool's per-batch action check: bounds computed once, same errors as before."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from actors.actions import ActionCheck


def test_discrete_bounds_follow_the_space_start() -> None:
    check = ActionCheck(gymnasium.spaces.Discrete(3, start=-1), (4,))
    ok = np.array([-1, 0, 1, 1], dtype=np.int8)
    assert check(ok) is ok  # no copy on the happy path
    with pytest.raises(ValueError, match=r"out of range.*row 2 holds 2"):
        check(np.array([0, 1, 2, -1]))
    with pytest.raises(ValueError, match=r"out of range.*row 3 holds -2"):
        check(np.array([0, 1, 0, -2]))
    assert check(np.array([0, 1, 0, 1], dtype=np.uint64)).dtype == np.uint64


def test_multidiscrete_checks_each_column() -> None:
    check = ActionCheck(gymnasium.spaces.MultiDiscrete([2, 5]), (3, 2))
    check(np.array([[1, 4], [0, 0], [1, 3]]))
    with pytest.raises(ValueError, match=r"row 1 holds \[2, 0\]"):
        check(np.array([[1, 4], [2, 0], [1, 3]]))


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint16])
def test_multidiscrete_catches_any_one_bad_cell(dtype: type) -> None:
    """Per-column reductions: one cell at its column's bound, or below 0, fails the batch."""
    nvec = [9, 17, 4, 17]
    check = ActionCheck(gymnasium.spaces.MultiDiscrete(nvec), (64, 4))
    ok = (np.arange(64 * 4).reshape(64, 4) % np.array(nvec)).astype(dtype)
    assert check(ok) is ok
    for col, n in enumerate(nvec):
        bad = ok.copy()
        bad[37, col] = n  # in range for every other column but this one
        with pytest.raises(ValueError, match="row 37 holds"):
            check(bad)
        if np.dtype(dtype).kind == "i":
            bad[37, col] = -1
            with pytest.raises(ValueError, match="row 37 holds"):
                check(bad)


def test_multidiscrete_with_a_start_checks_both_bounds() -> None:
    space = gymnasium.spaces.MultiDiscrete([3, 2], start=[-1, 5])
    check = ActionCheck(space, (2, 2))
    check(np.array([[-1, 5], [1, 6]]))
    with pytest.raises(ValueError, match=r"row 0 holds \[-2, 5\]"):
        check(np.array([[-2, 5], [1, 6]]))
    with pytest.raises(ValueError, match=r"row 1 holds \[1, 7\]"):
        check(np.array([[-1, 5], [1, 7]]))
    with pytest.raises(ValueError, match=r"row 1 holds \[0, 4\]"):
        check(np.array([[-1, 5], [0, 4]]))


def test_shape_and_dtype_errors_name_the_problem() -> None:
    check = ActionCheck(gymnasium.spaces.Discrete(2), (4,))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        check(np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="integer dtype"):
        check(np.zeros(4, np.float32))
    box = ActionCheck(gymnasium.spaces.Box(-1, 1, (2,)), (2, 2))
    with pytest.raises(ValueError, match="finite"):
        box(np.array([[0.0, np.nan], [0.0, 0.0]]))
