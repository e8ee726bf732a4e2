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


def test_shape_and_dtype_errors_name_the_problem() -> None:
    check = ActionCheck(gymnasium.spaces.Discrete(2), (4,))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        check(np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="integer dtype"):
        check(np.zeros(4, np.float32))
    box = ActionCheck(gymnasium.spaces.Box(-1, 1, (2,)), (2, 2))
    with pytest.raises(ValueError, match="finite"):
        box(np.array([[0.0, np.nan], [0.0, 0.0]]))
