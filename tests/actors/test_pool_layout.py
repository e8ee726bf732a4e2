"""The pool's layout (actors/layout.py): every env in exactly one member, groups contiguous in the arena."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from actors.layout import Member, PoolLayout, plan_layout


def every_layout() -> list[PoolLayout]:
    """Every valid layout of up to 4 actors with up to 12 envs each, in all three kinds."""
    out = []
    for actors, per_actor, split, local in itertools.product(range(1, 5), range(1, 13), (True, False), (True, False)):
        num_envs = actors * per_actor
        for batch in range(1, num_envs + 1):
            if num_envs % batch == 0:
                try:
                    out.append(PoolLayout.plan(num_envs, actors, batch, split, local))
                except ValueError:
                    pass
    return out


LAYOUTS = every_layout()


def test_the_three_kinds_of_layout_are_all_covered() -> None:
    kinds = {("split" if lay.spans_all else "local" if lay.actors_per_group == 1 and lay.parts_per_actor > 1
              else "whole") for lay in LAYOUTS}
    assert kinds == {"split", "local", "whole"}
    assert len(LAYOUTS) > 200


def test_every_env_is_in_one_member_and_every_group_is_contiguous() -> None:
    for lay in LAYOUTS:
        check_members(lay)


def test_each_actor_has_its_parts_once_in_order() -> None:
    for lay in LAYOUTS:
        check_parts(lay)


def check_members(lay: PoolLayout) -> None:
    seen: list[int] = []
    for g, members in enumerate(lay.groups):
        row = g * lay.batch_size
        for m in members:
            assert m.rows[0] == row, lay  # a group's members follow each other in the arena
            assert m.rows[1] - m.rows[0] == m.envs[1] - m.envs[0] == lay.envs_per_actor // lay.parts_per_actor, lay
            lo, hi = lay.env_slice(m.actor)
            assert lo <= m.envs[0] < m.envs[1] <= hi, lay  # a member's envs are its actor's
            assert m.actor in lay.group_actors(g), lay
            row = m.rows[1]
            seen.extend(range(*m.envs))
        assert row == (g + 1) * lay.batch_size, lay
    assert sorted(seen) == list(range(lay.num_envs)), lay


def check_parts(lay: PoolLayout) -> None:
    for k in range(lay.num_actors):
        mine = [m for members in lay.groups for m in members if m.actor == k]
        assert sorted(m.part for m in mine) == list(range(lay.parts_per_actor)), lay
        rows = lay.parts(k)
        assert rows == [next(m.rows for m in mine if m.part == j) for j in range(lay.parts_per_actor)], lay
        envs = sorted(m.envs for m in mine)
        assert envs[0][0] == lay.env_slice(k)[0] and envs[-1][1] == lay.env_slice(k)[1], lay


def test_split_local_and_whole_layouts_place_members_as_documented() -> None:
    split = PoolLayout.plan(16, 2, 4, split=True)  # 4 groups: every actor has a part of each
    assert (split.parts_per_actor, split.actors_per_group, split.spans_all) == (4, 2, True)
    assert split.groups[1] == (Member(0, 1, (2, 4), (4, 6)), Member(1, 1, (10, 12), (6, 8)))
    local = PoolLayout.plan(16, 2, 4, local=True)  # a group is one part of one actor
    assert (local.parts_per_actor, local.actors_per_group, local.spans_all) == (2, 1, False)
    assert [(m.actor, m.part) for (m,) in local.groups] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    whole = PoolLayout.plan(16, 4, 8, split=False)  # a group is two whole actors
    assert (whole.parts_per_actor, whole.actors_per_group) == (1, 2)
    assert [m.actor for m in whole.groups[1]] == [2, 3]


def test_env_ids_and_views_name_the_group_rows() -> None:
    lay = PoolLayout.plan(8, 2, 4, split=True)  # group 1: actor 0's envs 2:4 and actor 1's envs 6:8
    np.testing.assert_array_equal(lay.env_ids(1, 2), [4, 5, 6, 7, 12, 13, 14, 15])  # 2 agents per env
    buffers = {"observations": np.arange(16 * 3).reshape(16, 3), "maps": np.arange(8)}  # per agent, per env
    views = lay.views(1, buffers)
    assert lay.rows_per_env(buffers) == {"observations": 2, "maps": 1}
    assert np.shares_memory(views["observations"], buffers["observations"])
    np.testing.assert_array_equal(views["observations"], buffers["observations"][8:16])
    np.testing.assert_array_equal(views["maps"], [4, 5, 6, 7])


def test_a_member_is_a_frozen_record() -> None:
    m = PoolLayout.plan(4, 1, 2).groups[0][0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.actor = 3  # type: ignore[misc]


def test_plan_layout_keeps_its_tuple_and_its_errors() -> None:
    assert plan_layout(16, 2, 4) == (8, 4, 2)
    with pytest.raises(ValueError, match="divisible by num_actors"):
        PoolLayout.plan(10, 3, 5)
    with pytest.raises(ValueError, match="at most 65535 groups"):
        plan_layout(65536, 1, 1)
