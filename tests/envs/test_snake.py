"""The native multi-agent snake: map invariants over random play, scripted rules, params."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from envs.registry import PRESETS

EMPTY, FOOD, WALL, OWN_HEAD, OWN_BODY, HEAD, BODY = range(7)
UP, DOWN, LEFT, RIGHT = range(4)


def dims(env: envs.NativeEnv) -> tuple[int, int, int, int, int]:
    p = env.params
    w, h, v = int(p["width"]), int(p["height"]), int(p["vision"])
    return w, h, v, w + 2 * v, h + 2 * v


def maps(env: envs.NativeEnv) -> np.ndarray:
    _, _, _, wp, hp = dims(env)
    return env.map.reshape(env.num_envs, hp, wp)


def deltas(env: envs.NativeEnv) -> np.ndarray:
    wp = dims(env)[3]
    return np.array([-wp, wp, -1, 1])


def head_rc(env: envs.NativeEnv, m: int, i: int) -> tuple[int, int]:
    """Row and column of a head in interior coordinates."""
    _, _, v, wp, _ = dims(env)
    r, c = divmod(int(env.heads[m, i]), wp)
    return r - v, c - v


def check_view(env: envs.NativeEnv, view: np.ndarray, m: int, i: int) -> None:
    """The view is the map window at the head, with the own cells relabelled."""
    _, _, v, wp, _ = dims(env)
    r, c = divmod(int(env.heads[m, i]), wp)
    window = maps(env)[m, r - v : r + v + 1, c - v : c + v + 1]
    assert view[v, v] == OWN_HEAD
    back = np.where(view == OWN_HEAD, HEAD, np.where(view == OWN_BODY, BODY, view))
    np.testing.assert_array_equal(back, window)
    own_body = int((view == OWN_BODY).sum())
    length = int(env.lengths[m, i])
    assert own_body <= length - 1
    if length - 1 <= v:  # the whole body is within reach of the window
        assert own_body == length - 1


def check_invariants(env: envs.NativeEnv) -> None:
    w, h, v, wp, hp = dims(env)
    p = env.params
    grid = maps(env)
    snakes = env.agents_per_env
    interior = grid[:, v : v + h, v : v + w]
    border = grid.copy()
    border[:, v : v + h, v : v + w] = WALL
    assert (border == WALL).all(), "the padding is all wall"
    assert np.isin(interior, [EMPTY, FOOD, HEAD, BODY]).all()
    assert ((env.lengths >= 1) & (env.lengths <= p["max_length"])).all()
    max_food = p["max_food"] or 2 * p["food"]
    flat = env.map
    obs = env.observations.reshape(env.num_envs, snakes, 2 * v + 1, 2 * v + 1)
    for m in range(env.num_envs):
        cells = interior[m]
        # Every snake owns exactly len cells, one of them its head: no cell is shared.
        assert (cells == HEAD).sum() + (cells == BODY).sum() == env.lengths[m].sum()
        assert (cells == HEAD).sum() == snakes
        assert len(set(env.heads[m].tolist())) == snakes
        assert (flat[m, env.heads[m]] == HEAD).all()
        food = int((cells == FOOD).sum())
        assert food <= max_food
        assert food >= p["food"] or not (cells == EMPTY).any()
        for i in range(snakes):
            check_view(env, obs[m, i], m, i)


def play(env: envs.NativeEnv, steps: int, rng: np.random.Generator, wild: bool = False) -> None:
    """Random play checking the invariants and the per-step rules after every step."""
    p = env.params
    delta = deltas(env)
    for _ in range(steps):
        actions = rng.integers(0, 4, env.num_agents, dtype=np.int32)
        if wild:
            odd = rng.random(env.num_agents) < 0.2
            actions[odd] = rng.integers(-(2**31), 2**31 - 1, int(odd.sum()), dtype=np.int64)
        prev_len = env.lengths.ravel().copy()
        prev_head = env.heads.ravel().copy()
        env.step(actions)
        check_invariants(env)
        term, trunc, rew = env.terminals, env.truncations, env.rewards
        assert env.masks.all()
        assert not (term & trunc).any(), "a death is never a truncation"
        np.testing.assert_array_equal(rew[term], np.float32(p["reward_death"]))
        assert (env.lengths.ravel()[term | trunc] == 1).all(), "ended episodes respawn at length 1"
        if not p["max_steps"]:
            assert not trunc.any()
        alive = ~(term | trunc)
        ate = rew == np.float32(p["reward_food"])
        assert np.isin(rew[alive], np.float32([0.0, p["reward_food"]])).all()
        grow = alive & ate & (prev_len < p["max_length"])
        np.testing.assert_array_equal(env.lengths.ravel()[alive], (prev_len + grow)[alive])
        moved = env.heads.ravel() - prev_head
        assert np.isin(moved[alive], delta).all()
        valid = alive & (actions >= 0) & (actions < 4)
        a = actions[valid].astype(np.int64)
        assert ((moved[valid] == delta[a]) | (moved[valid] == -delta[a])).all()
        short = valid & (prev_len == 1)
        assert (moved[short] == delta[actions[short].astype(np.int64)]).all()


def test_random_play_keeps_invariants() -> None:
    env = envs.make("snake", num_envs=3, seed=1, width=10, height=8, snakes=5, food=6, vision=3,
                    max_length=12, max_steps=60)
    check_invariants(env)
    play(env, 600, np.random.default_rng(0), wild=True)
    stats = env.episode_stats()
    assert stats["episodes"] > 0
    assert stats["episode_length"] >= 1


@settings(max_examples=20, deadline=None)
@given(
    width=st.integers(1, 9),
    height=st.integers(1, 9),
    vision=st.integers(1, 4),
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
    max_length=st.integers(1, 20),
    max_steps=st.integers(0, 30),
)
def test_random_params_keep_invariants(width: int, height: int, vision: int, data: st.DataObject,
                                       seed: int, max_length: int, max_steps: int) -> None:
    cells = width * height
    snakes = data.draw(st.integers(1, cells))
    food = data.draw(st.integers(0, cells - snakes))
    env = envs.make("snake", num_envs=2, seed=seed, width=width, height=height, snakes=snakes,
                    food=food, vision=vision, max_length=max_length, max_steps=max_steps,
                    reward_food=0.5, reward_death=-2.0)
    check_invariants(env)
    play(env, 60, np.random.default_rng(seed), wild=True)


def test_wall_death_gives_penalty_terminal_and_food() -> None:
    env = envs.make("snake", num_envs=4, seed=3, width=6, height=1, snakes=1, food=0, max_food=6,
                    reward_death=-2.5)
    before = env.heads.copy()
    env.step(np.full(4, UP, dtype=np.int32))
    assert env.terminals.all()
    np.testing.assert_array_equal(env.rewards, np.float32(-2.5))
    assert (env.map[np.arange(4), before[:, 0]] == FOOD).all(), "the body became food"
    assert (env.heads != before).all() and (env.lengths == 1).all()
    stats = env.episode_stats()
    assert stats == {"episodes": 4, "episode_return": -2.5, "episode_length": 1.0, "score": 0.0}


def seed_where(predicate: Callable[[envs.NativeEnv], bool], **params: Any) -> envs.NativeEnv:
    """The first seed whose initial map satisfies ``predicate`` (maps are tiny: one comes soon)."""
    for seed in range(200):
        env = envs.make("snake", num_envs=1, seed=seed, **params)
        if predicate(env):
            return env
    raise AssertionError("no seed gave the wanted start")


def test_eating_grows_and_full_map_respawns_on_food() -> None:
    env = seed_where(lambda e: head_rc(e, 0, 0)[1] == 0, width=2, height=1, snakes=1, food=1)
    env.step(np.array([RIGHT], dtype=np.int32))
    assert env.rewards[0] == 1.0 and env.lengths[0, 0] == 2 and not env.terminals[0]
    row = maps(env)[0, 5, 5:7]
    np.testing.assert_array_equal(row, [BODY, HEAD])  # no empty cell left: no new food
    env.step(np.array([UP], dtype=np.int32))
    assert env.terminals[0] and env.lengths[0, 0] == 1
    # The 2-cell body became food; the snake respawned on one of them (no empty cell).
    assert sorted(maps(env)[0, 5, 5:7].tolist()) == [FOOD, HEAD]
    check_invariants(env)


def test_reversing_into_the_neck_goes_straight_on() -> None:
    env = seed_where(lambda e: head_rc(e, 0, 0)[1] == 0 and maps(e)[0, 5, 6] == FOOD,
                     width=3, height=1, snakes=1, food=1)
    env.step(np.array([RIGHT], dtype=np.int32))
    assert env.lengths[0, 0] == 2 and maps(env)[0, 5, 7] == FOOD
    env.step(np.array([LEFT], dtype=np.int32))  # the neck: ignored
    assert not env.terminals[0] and env.rewards[0] == 1.0 and env.lengths[0, 0] == 3
    assert head_rc(env, 0, 0) == (0, 2)


def test_head_on_collision_is_won_by_the_lower_index() -> None:
    env = seed_where(lambda e: sorted(head_rc(e, 0, i)[1] for i in range(2)) == [0, 2],
                     width=3, height=1, snakes=2, food=0)
    toward = [RIGHT if head_rc(env, 0, i)[1] == 0 else LEFT for i in range(2)]
    env.step(np.array(toward, dtype=np.int32))
    assert not env.terminals[0] and head_rc(env, 0, 0) == (0, 1)
    assert env.terminals[1] and env.rewards[1] == -1.0
    check_invariants(env)


def test_out_of_range_actions_go_straight_on() -> None:
    env = envs.make("snake", num_envs=8, seed=5, width=12, height=12, snakes=3, food=4)
    rng = np.random.default_rng(1)
    for bad in (4, -1, 2**31 - 1, -(2**31)):
        before = env.heads.ravel().copy()
        env.step(np.full(env.num_agents, bad, dtype=np.int32))
        alive = ~env.terminals
        assert np.isin((env.heads.ravel() - before)[alive], deltas(env)).all()
        check_invariants(env)
    play(env, 50, rng, wild=True)


def test_truncation_writes_the_last_view_and_respawns() -> None:
    env = envs.make("snake", num_envs=2, seed=7, width=30, height=30, snakes=1, food=0,
                    vision=2, max_steps=4)
    first = np.array([UP if head_rc(env, m, 0)[0] > 0 else DOWN for m in range(2)], dtype=np.int32)
    for k in range(3):  # back and forth: a length-1 snake may reverse, and no wall is hit
        env.step(first if k % 2 == 0 else first ^ 1)
        assert not env.truncations.any() and not env.terminals.any()
    env.step(first ^ 1)
    assert env.truncations.all() and not env.terminals.any()
    assert (env.final_observations[:, 2, 2] == OWN_HEAD).all()
    assert (env.lengths == 1).all()
    stats = env.episode_stats()
    assert stats["episodes"] == 2 and stats["episode_length"] == 4.0
    check_invariants(env)


def test_same_seed_same_run_other_seed_differs() -> None:
    def run(seed: int) -> list[np.ndarray]:
        env = envs.make("snake", num_envs=4, seed=seed, width=12, height=10, snakes=6, food=5)
        rng = np.random.default_rng(99)
        out = []
        for _ in range(200):
            env.step(rng.integers(0, 4, env.num_agents, dtype=np.int32))
            out += [env.observations.copy(), env.rewards.copy(), env.terminals.copy(), env.map.copy()]
        return out

    a, b, c = run(11), run(11), run(12)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    env = envs.make("snake", num_envs=2, seed=11, width=12, height=10, snakes=6, food=5)
    first = env.map.copy()
    env.reset(11)
    np.testing.assert_array_equal(env.map, first)


@pytest.mark.parametrize("preset,num_envs", [("small", 16), ("medium", 2), ("large", 1)])
def test_presets_construct_and_step(preset: str, num_envs: int) -> None:
    env = envs.make("snake", num_envs=num_envs, preset=preset)
    assert env.num_agents == num_envs * PRESETS["snake"][preset]["snakes"]
    assert env.observations.shape == (env.num_agents, 11, 11) and env.observations.dtype == np.int8
    rng = np.random.default_rng(0)
    for _ in range(20):
        env.step(rng.integers(0, 4, env.num_agents, dtype=np.int32))
    grid = maps(env)
    for m in range(num_envs):
        assert ((grid[m] == HEAD) | (grid[m] == BODY)).sum() == env.lengths[m].sum()
    env.close()


@pytest.mark.parametrize(
    "params,name",
    [
        ({"width": 0}, "width"),
        ({"height": -3}, "height"),
        ({"snakes": 0}, "snakes"),
        ({"width": 3, "height": 3, "snakes": 10, "food": 0}, "snakes"),
        ({"width": 3, "height": 3, "snakes": 5, "food": 5}, "food"),
        ({"vision": 33}, "vision"),
        ({"vision": 0}, "vision"),
        ({"max_length": 0}, "max_length"),
        ({"food": 8, "max_food": 4}, "max_food"),
        ({"reward_death": 1.0}, "reward_death"),
        ({"max_steps": -1}, "max_steps"),
    ],
)
def test_bad_params_name_the_parameter(params: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"'{name}'"):
        envs.make("snake", num_envs=2, **params)


def test_spaces() -> None:
    env = envs.make("snake", num_envs=2, vision=3, snakes=3)
    assert env.single_observation_space.shape == (7, 7)
    assert env.single_observation_space.high.max() == BODY
    assert env.single_action_space.n == 4
    assert env.map.shape == (2, (16 + 6) * (16 + 6)) and env.lengths.shape == (2, 3)
