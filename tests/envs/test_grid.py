"""The grid env: invariants of the maps over many random steps, episode ends, determinism.

Everything is checked from the outside through the exposed padded maps and
agent positions, with numpy re-deriving what the C code should have written.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envs

EMPTY, WALL, GOAL, AGENT = 0, 1, 2, 3


def grids(env: envs.NativeEnv) -> np.ndarray:
    """The padded maps as (num_envs, height + 2v, width + 2v)."""
    v, w, h = int(env.params["vision"]), int(env.params["width"]), int(env.params["height"])
    return env.map.reshape(env.num_envs, h + 2 * v, w + 2 * v)


def views(env: envs.NativeEnv, maps: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Each agent's (2v+1)^2 window cut from ``maps`` in numpy."""
    v = int(env.params["vision"])
    pw = maps.shape[2]
    rows, cols = np.divmod(positions.reshape(-1), pw)
    offs = np.arange(-v, v + 1)
    mi = np.repeat(np.arange(env.num_envs), env.agents_per_env)[:, None, None]
    return maps[mi, rows[:, None, None] + offs[None, :, None], cols[:, None, None] + offs[None, None, :]]


def reachable_from_one_goal(maps: np.ndarray) -> np.ndarray:
    """Flood fill over non-wall cells from the first goal of every map (vectorized over maps)."""
    passable = maps != WALL
    flat = (maps == GOAL).reshape(len(maps), -1)
    reach = np.zeros_like(flat)
    reach[np.arange(len(maps)), flat.argmax(axis=1)] = True
    reach = reach.reshape(maps.shape)
    for _ in range(maps.shape[1] * maps.shape[2]):
        grown = reach.copy()
        grown[:, 1:] |= reach[:, :-1]
        grown[:, :-1] |= reach[:, 1:]
        grown[:, :, 1:] |= reach[:, :, :-1]
        grown[:, :, :-1] |= reach[:, :, 1:]
        grown &= passable
        if (grown == reach).all():
            break
        reach = grown
    return reach


def check_maps(env: envs.NativeEnv) -> None:
    """Walls, goals and agents are where the rules put them, and every free cell reaches a goal."""
    v, w, h = int(env.params["vision"]), int(env.params["width"]), int(env.params["height"])
    maps = grids(env)
    pos = env.positions
    rows, cols = np.divmod(pos, maps.shape[2])
    # Agents inside the map, never on a wall, drawn on the map, one per cell.
    assert ((rows >= v + 1) & (rows < v + h - 1) & (cols >= v + 1) & (cols < v + w - 1)).all()
    assert (np.take_along_axis(env.map, pos, axis=1) == AGENT).all()
    assert ((maps == AGENT).sum(axis=(1, 2)) == env.agents_per_env).all()
    assert ((maps == GOAL).sum(axis=(1, 2)) == int(env.params["goals"])).all()
    # The padding and the outer ring are wall.
    inner = maps[:, v + 1 : v + h - 1, v + 1 : v + w - 1]
    assert (maps == WALL).sum() == (inner == WALL).sum() + maps[0].size * len(maps) - inner[0].size * len(
        maps
    )
    # One connected component: each goal reaches every free cell an agent could stand on.
    reach = reachable_from_one_goal(maps)
    assert (reach == (maps != WALL)).all()


def test_codes_spaces_and_first_views() -> None:
    env = envs.make("grid", num_envs=3, seed=5, vision=2)
    assert env.single_observation_space.shape == (5, 5)
    assert env.single_observation_space.dtype == np.int8
    assert env.single_action_space.n == 5
    assert env.observations.shape == (12, 5, 5)
    check_maps(env)
    np.testing.assert_array_equal(env.observations, views(env, grids(env), env.positions))
    assert (env.observations[:, 2, 2] == AGENT).all()


@pytest.mark.parametrize("maze", [0, 1])
def test_random_walk_keeps_every_invariant(maze: int) -> None:
    """Thousands of random steps with regenerations: maps, views, rewards and flags stay consistent."""
    params = dict(width=11, height=9, agents=5, goals=2, maze=maze, room_size=3, max_steps=40,
                  goal_reward=2.0, step_reward=-0.25)
    env = envs.make("grid", num_envs=6, seed=3, **params)
    rng = np.random.default_rng(0)
    delta = np.array([0, -grids(env).shape[2], grids(env).shape[2], -1, 1])
    goals_reached = truncated = 0
    for t in range(1, 401):
        before_map = env.map.copy()
        before_pos = env.positions.copy()
        actions = rng.integers(0, 5, env.num_agents, dtype=np.int32)
        env.step(actions)
        # A goal ends the agent's episode exactly when it stepped onto one.
        target = np.take_along_axis(before_map, before_pos + delta[actions].reshape(before_pos.shape), axis=1)
        np.testing.assert_array_equal(env.terminals, (target == GOAL).reshape(-1))
        np.testing.assert_allclose(env.rewards, np.where(env.terminals, 1.75, -0.25))
        # The time limit truncates every agent that did not just reach a goal, and only then.
        limit = t % 40 == 0
        np.testing.assert_array_equal(env.truncations, ~env.terminals & limit)
        assert not (env.terminals & env.truncations).any()
        goals_reached += int(env.terminals.sum())
        truncated += int(env.truncations.sum())
        check_maps(env)
        np.testing.assert_array_equal(env.observations, views(env, grids(env), env.positions))
    assert goals_reached > 0 and truncated > 0
    stats = env.episode_stats()
    assert stats["episodes"] == goals_reached + truncated
    assert 0 < stats["score"] < 1


def test_goal_ends_the_episode_with_reward_and_respawns() -> None:
    env = envs.make("grid", num_envs=1, seed=0, width=12, height=12, agents=2, goals=1, room_size=20)
    pw = grids(env).shape[2]
    pos = int(env.positions[0, 0])
    # Put a goal next to agent 0 (the map is caller-owned state, like cartpole's).
    moves = ((1, -pw), (2, pw), (3, -1), (4, 1))
    action, step = next((a, d) for a, d in moves if env.map[0, pos + d] == EMPTY)
    env.map[0, pos + step] = GOAL
    env.step(np.array([action, 0], dtype=np.int32))
    assert env.terminals.tolist() == [True, False]
    assert env.truncations.tolist() == [False, False]
    assert env.rewards[0] == 1.0 and env.rewards[1] == 0.0
    assert env.map[0, pos] == EMPTY and env.map[0, pos + step] == GOAL
    assert env.positions[0, 0] != pos
    np.testing.assert_array_equal(env.observations, views(env, grids(env), env.positions))
    stats = env.episode_stats()
    assert stats == {"episodes": 1, "episode_return": 1.0, "episode_length": 1.0, "score": 1.0}


def test_final_observations_equal_the_last_view() -> None:
    env = envs.make("grid", num_envs=4, seed=1, max_steps=30, step_reward=-0.5, agents=3)
    rng = np.random.default_rng(1)
    for _ in range(29):
        env.step(rng.integers(0, 5, env.num_agents, dtype=np.int32))
    before = env.observations.copy()
    assert not env.truncations.any()
    env.episode_stats()
    env.step(np.zeros(env.num_agents, dtype=np.int32))  # nobody moves on the last step
    assert env.truncations.all() and not env.terminals.any()
    np.testing.assert_array_equal(env.final_observations, before)
    check_maps(env)  # regenerated
    stats = env.episode_stats()
    assert stats["episodes"] == env.num_agents and stats["score"] == 0.0
    # Nobody reached a goal in the last step, so lengths are at most the limit.
    assert 0 < stats["episode_length"] <= 30


def test_no_ops_for_the_whole_episode_log_its_length_and_return() -> None:
    env = envs.make("grid", num_envs=2, seed=4, max_steps=25, step_reward=-0.5)
    first = env.map.copy()
    env.step_n(25)  # actions are zeros: no-ops
    assert env.truncations.all() and not env.terminals.any()
    assert env.episode_stats() == {"episodes": 8, "episode_return": -12.5, "episode_length": 25.0,
                                   "score": 0.0}
    assert not np.array_equal(first, env.map)  # a new map


def test_out_of_range_actions_are_no_ops() -> None:
    a = envs.make("grid", num_envs=3, seed=9, agents=6, max_steps=50)
    b = envs.make("grid", num_envs=3, seed=9, agents=6, max_steps=50)
    rng = np.random.default_rng(2)
    bad = np.array([-1, 5, 6, 2**31 - 1, -(2**31), 1000], dtype=np.int32)
    for _ in range(120):
        moves = rng.integers(0, 5, a.num_agents, dtype=np.int32)
        wild = rng.random(a.num_agents) < 0.5
        a.step(np.where(wild, rng.choice(bad, a.num_agents), moves).astype(np.int32))
        b.step(np.where(wild, 0, moves).astype(np.int32))
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.map, b.map)
    check_maps(a)


def run(seed: int, steps: int = 150, **params: float) -> tuple[np.ndarray, ...]:
    env = envs.make("grid", num_envs=4, seed=seed, max_steps=40, **params)
    rng = np.random.default_rng(7)
    out = [env.map.copy()]
    for _ in range(steps):
        env.step(rng.integers(0, 5, env.num_agents, dtype=np.int32))
        out += [env.observations.copy(), env.rewards.copy(), env.terminals.copy(), env.truncations.copy()]
    return tuple(out)


@pytest.mark.parametrize("maze", [0, 1])
def test_same_seed_same_run_different_seed_different_maps(maze: int) -> None:
    a, b, c = run(11, maze=maze), run(11, maze=maze), run(12, maze=maze)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    # reset(seed) reproduces the start of a fresh env.
    env = envs.make("grid", num_envs=4, seed=0, max_steps=40, maze=maze)
    env.step_n(17)
    env.reset(11)
    np.testing.assert_array_equal(env.map, a[0])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(4, 20),
    height=st.integers(3, 20),
    maze=st.integers(0, 1),
    room_size=st.integers(1, 8),
    vision=st.integers(1, 4),
    agents=st.integers(1, 6),
    goals=st.integers(1, 3),
    max_steps=st.integers(1, 30),
    seed=st.integers(0, 2**63),
    action_seed=st.integers(0, 2**32 - 1),
)
def test_random_params_and_actions(width: int, height: int, maze: int, room_size: int, vision: int,
                                   agents: int, goals: int, max_steps: int, seed: int,
                                   action_seed: int) -> None:
    params = dict(width=width, height=height, maze=maze, room_size=room_size, vision=vision,
                  agents=agents, goals=goals, max_steps=max_steps)
    try:
        env = envs.make("grid", num_envs=2, seed=seed, **params)
    except ValueError as err:  # too small for this many goals and agents
        assert "'agents'" in str(err) or "'goals'" in str(err)
        if maze:  # a maze's free cells are exact: the refusal must be right
            try:
                small = envs.make("grid", num_envs=1, seed=seed, **{**params, "agents": 1, "goals": 1})
            except ValueError:
                return
            assert (small.map != WALL).sum() - 1 < agents + goals  # minus the agent drawn there
        return
    assert env.observations.shape == (2 * agents, 2 * vision + 1, 2 * vision + 1)
    rng = np.random.default_rng(action_seed)
    check_maps(env)
    for t in range(1, 61):
        env.step(rng.integers(-2, 7, env.num_agents, dtype=np.int32))
        assert not (env.terminals & env.truncations).any()
        np.testing.assert_array_equal(env.truncations, ~env.terminals & (t % max_steps == 0))
        check_maps(env)
        np.testing.assert_array_equal(env.observations, views(env, grids(env), env.positions))


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"width": 0}, "width"),
        ({"height": -3}, "height"),
        ({"width": 2.5}, "width"),
        ({"agents": 0}, "agents"),
        ({"goals": 0}, "goals"),
        ({"vision": 0}, "vision"),
        ({"max_steps": 0}, "max_steps"),
        ({"maze": 2}, "maze"),
        ({"room_size": -1}, "room_size"),
        ({"width": 5, "height": 5, "agents": 100}, "agents"),
        ({"width": 8, "height": 8, "maze": 1, "agents": 1, "goals": 17}, "goals"),
        ({"width": 3, "height": 3}, "goals"),
        ({"colour": 1}, "colour"),
    ],
)
def test_bad_params_name_the_parameter(params: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"'{name}'"):
        envs.make("grid", num_envs=2, **params)


def test_exact_capacity_fits() -> None:
    """A 7x7 maze has exactly 2*9-1 free cells: 16 agents and 1 goal fill it."""
    env = envs.make("grid", num_envs=2, seed=0, width=7, height=7, maze=1, agents=16, goals=1)
    check_maps(env)
    env.step_n(50)
    check_maps(env)
    with pytest.raises(ValueError, match="'agents'"):
        envs.make("grid", num_envs=1, width=7, height=7, maze=1, agents=17, goals=1)


def test_presets() -> None:
    for preset in ("rooms", "maze", "large"):
        env = envs.make("grid", num_envs=2, seed=0, preset=preset)
        check_maps(env)
        env.step(np.random.default_rng(0).integers(0, 5, env.num_agents, dtype=np.int32))
        check_maps(env)
