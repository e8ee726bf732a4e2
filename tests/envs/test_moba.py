"""Moba (envs/c/moba.h): the game's rules, checked from its extras after every step.

The contract suite (test_contract.py) covers what every native env owes; here the
extras (`terrain`, `heroes`, `units`, `game`) let long random runs check the
game's invariants step by step, and a Python painter checks the observation window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envs
from envs.native import action_high

HERO = {name: k for k, name in enumerate(
    "team x y hp hp_max mana mana_max level xp gold cd1 cd2 cd3 respawn alive "
    "last_hits camp_hits kills deaths towers".split())}
UNIT = {name: k for k, name in enumerate("kind team x y hp hp_max alive target".split())}
GAME = {name: k for k, name in enumerate("tick winner creeps deaths waves result".split())}
CREEP, TOWER, ANCIENT, CAMP = 2, 3, 4, 5
COOLDOWNS = np.array([10, 16, 14], dtype=np.float32)
WALL = 1
VIEW = 5
SELF_ONLY = 0  # opponent codes
SCRIPTED, RANDOM = 1, 2


def level_of(xp: np.ndarray) -> np.ndarray:
    level = np.ones_like(xp)
    for lv in range(1, 10):
        level = np.where(xp >= 50.0 * lv * (lv + 1), lv + 1, level)
    return level


def views(env: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(heroes (E,10,cols), units (E,U,cols), game (E,cols), terrain (E,S,S)) copies."""
    s = int(env.params["map_size"])
    return (env.heroes.reshape(env.num_envs, 10, -1).copy(), env.units.reshape(env.num_envs, -1, len(UNIT)).copy(),
            env.game.copy(), env.terrain.reshape(env.num_envs, s, s))


def wild_actions(env: Any, rng: np.random.Generator, wild: float) -> np.ndarray:
    actions = rng.integers(0, action_high(env.single_action_space), size=env.actions.shape, dtype=np.int32)
    mask = rng.random(actions.shape) < wild
    actions[mask] = rng.integers(np.iinfo(np.int32).min, np.iinfo(np.int32).max, size=int(mask.sum()),
                                 endpoint=True, dtype=np.int32)
    return actions


class Invariants:
    """Checks one step against the previous one; call :meth:`check` after every step."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.prev = views(env)
        self.ends = {"terminal": 0, "truncated": 0}
        self.check_state(*self.prev)

    def check_state(self, heroes: np.ndarray, units: np.ndarray, game: np.ndarray, terrain: np.ndarray) -> None:
        env, s = self.env, terrain.shape[-1]
        for table, cols in ((heroes, HERO), (units, UNIT)):
            alive = table[..., cols["alive"]] == 1
            hp, hp_max = table[..., cols["hp"]], table[..., cols["hp_max"]]
            assert np.all(hp >= 0) and np.all(hp <= hp_max), "hit points out of bounds"
            assert np.all(hp[alive] > 0), "a living unit at 0 hit points"
            x, y = table[..., cols["x"]].astype(int), table[..., cols["y"]].astype(int)
            for m in range(env.num_envs):
                am = alive[m]
                assert np.all((x[m][am] >= 0) & (x[m][am] < s) & (y[m][am] >= 0) & (y[m][am] < s))
                assert np.all(terrain[m][y[m][am], x[m][am]] != WALL), "a unit stands in a wall"
        mana, mana_max = heroes[..., HERO["mana"]], heroes[..., HERO["mana_max"]]
        assert np.all(mana >= 0) and np.all(mana <= mana_max), "mana out of bounds"
        cds = heroes[..., HERO["cd1"]:HERO["cd3"] + 1]
        assert np.all(cds >= 0) and np.all(cds <= COOLDOWNS), "a cooldown below 0 or above its length"
        gold = (20 * heroes[..., HERO["last_hits"]] + 40 * heroes[..., HERO["camp_hits"]]
                + 100 * heroes[..., HERO["kills"]] + 150 * heroes[..., HERO["towers"]])
        assert np.array_equal(heroes[..., HERO["gold"]], gold), "gold from somewhere other than its sources"
        level = heroes[..., HERO["level"]]
        assert np.array_equal(level, level_of(heroes[..., HERO["xp"]])), "level does not follow experience"
        assert np.allclose(heroes[..., HERO["hp_max"]], 500 + 60 * (level - 1)), "stats do not follow level"
        dead = heroes[..., HERO["alive"]] == 0
        assert np.all(heroes[..., HERO["respawn"]][dead] >= 1) or True
        control = np.array([env.params["player"]] * 5 + [env.params["opponent"]] * 5)
        masks = env.masks.reshape(env.num_envs, 10)
        assert np.array_equal(masks, (heroes[..., HERO["alive"]] == 1) & (control == SELF_ONLY)), \
            "masks are not exactly the living heroes the agents play"

    def check(self) -> None:
        env = self.env
        heroes, units, game, terrain = cur = views(env)
        self.check_state(*cur)
        p_heroes, p_units, p_game, _ = self.prev
        term = env.terminals.reshape(env.num_envs, 10)
        trunc = env.truncations.reshape(env.num_envs, 10)
        control = np.array([env.params["player"]] * 5 + [env.params["opponent"]] * 5) == SELF_ONLY
        for m in range(env.num_envs):
            tick, prev_tick = game[m, GAME["tick"]], p_game[m, GAME["tick"]]
            new_game = tick == 0
            assert not (term[m].any() and trunc[m].any())
            if not new_game:  # the game went on: one tick, nothing ended
                assert tick == prev_tick + 1 and not term[m].any() and not trunc[m].any()
                assert game[m, GAME["result"]] == p_game[m, GAME["result"]]
                for col in ("gold", "xp"):
                    assert np.all(heroes[m, :, HERO[col]] >= p_heroes[m, :, HERO[col]]), f"{col} went down"
                if game[m, GAME["deaths"]] == p_game[m, GAME["deaths"]]:
                    assert np.array_equal(heroes[m, :, HERO["xp"]], p_heroes[m, :, HERO["xp"]]), \
                        "experience without a death"
                    assert np.array_equal(heroes[m, :, HERO["gold"]], p_heroes[m, :, HERO["gold"]]), \
                        "gold without a death"
                structs = np.isin(p_units[m, :, UNIT["kind"]], (TOWER, ANCIENT))
                assert np.all(units[m, structs, UNIT["hp"]] <= p_units[m, structs, UNIT["hp"]]), "a structure healed"
                continue
            # A new game: the last one ended by an ancient (terminals) or the tick limit (truncations).
            result = game[m, GAME["result"]]
            if result == 3:
                assert prev_tick + 1 == env.params["max_steps"], "truncated before the tick limit"
                assert np.array_equal(trunc[m], control) and not term[m].any()
                self.ends["truncated"] += 1
            else:
                assert result in (0, 1, 2), "a game ended without an ancient falling or the tick limit"
                assert prev_tick + 1 < env.params["max_steps"] or result != 3
                ancients = p_units[m, :, UNIT["kind"]] == ANCIENT
                assert np.all(p_units[m, ancients, UNIT["alive"]] == 1)  # the fall happened on this step
                assert np.array_equal(term[m], control) and not trunc[m].any()
                self.ends["terminal"] += 1
        self.prev = cur


@pytest.mark.parametrize("opponent", [SELF_ONLY, SCRIPTED, RANDOM])
def test_invariants_hold_after_every_step_of_long_random_runs(opponent: int) -> None:
    with envs.make("moba", extras=1, num_envs=6, seed=opponent, opponent=opponent, max_steps=1400) as env:
        rng = np.random.default_rng(opponent)
        inv = Invariants(env)
        for t in range(4500):
            env.step(wild_actions(env, rng, 0.05 if t % 3 else 0.0))
            inv.check()
        assert inv.ends["truncated"] > 0
        if opponent == SCRIPTED:
            assert inv.ends["terminal"] > 0, "the scripted team never destroyed the random team's ancient"


def test_the_scripted_bot_beats_the_random_team() -> None:
    """The bot plays: against uniformly random heroes it wins nearly every game it finishes."""
    with envs.make("moba", num_envs=16, seed=11, player=RANDOM, opponent=SCRIPTED, max_steps=2000) as env:
        results = []
        for _ in range(6000):
            env.step()
            ended = env.game[:, GAME["tick"]] == 0
            results += env.game[ended, GAME["result"]].tolist()
    results = np.array(results)
    decided = results[results != 3]
    assert len(results) >= 16 and len(decided) >= 8
    assert np.mean(decided == 1) >= 0.9, results  # it (almost) never loses
    assert np.mean(results == 1) >= 0.6, results  # and usually wins before the tick limit


def test_episodes_end_only_at_an_ancient_or_the_tick_limit_and_score_wins() -> None:
    with envs.make("moba", num_envs=8, seed=3, opponent=SCRIPTED, max_steps=1500) as env:
        rng = np.random.default_rng(0)
        wins = terminals = 0
        for _ in range(3000):
            env.step(wild_actions(env, rng, 0.0))
            ended = env.game[:, GAME["tick"]] == 0
            terminals += int(env.terminals.sum())
            wins += int(np.sum(env.game[ended, GAME["result"]] == 0)) * 5
            assert not env.terminals.reshape(-1, 10)[:, 5:].any(), "the scripted team's rows are not agents"
            assert not env.rewards.reshape(-1, 10)[:, 5:].any()
        stats = env.episode_stats()
    assert terminals > 0
    assert stats["episodes"] > 0 and stats["score"] * stats["episodes"] == pytest.approx(wins)


def test_dead_heroes_are_masked_until_they_respawn() -> None:
    with envs.make("moba", extras=1, num_envs=4, seed=5, respawn_time=7, opponent=SCRIPTED) as env:
        rng = np.random.default_rng(1)
        dead_for = np.zeros((4, 10), dtype=int)
        respawns = 0
        for _ in range(2000):
            env.step(wild_actions(env, rng, 0.0))
            heroes = env.heroes.reshape(4, 10, -1)
            dead = heroes[..., HERO["alive"]] == 0
            back = (dead_for > 0) & ~dead & (env.game[:, GAME["tick"]] != 0)[:, None]
            assert np.all(dead_for[back] == 7), "a hero came back before or after respawn_time"
            respawns += int(back.sum())
            dead_for = np.where(dead, dead_for + 1, 0)
            assert np.array_equal(env.masks.reshape(4, 10)[:, :5], ~dead[:, :5])
            assert not env.masks.reshape(4, 10)[:, 5:].any()
    assert respawns > 0


def test_determinism_and_seed_sensitivity_of_the_whole_state() -> None:
    def run(seed: int) -> list[bytes]:
        with envs.make("moba", extras=1, num_envs=3, seed=seed, opponent=SCRIPTED) as env:
            rng = np.random.default_rng(0)
            out = []
            for _ in range(400):
                env.step(wild_actions(env, rng, 0.0))
                out.append(env.heroes.tobytes() + env.units.tobytes() + env.observations.tobytes())
            return out

    a, b, c = run(1), run(1), run(2)
    assert a == b
    assert a != c


def test_the_tables_are_written_only_when_asked_for_and_change_nothing_else() -> None:
    """extras=0 (the default: training reads no tables) leaves heroes and units without columns;
    every other buffer, the game row included, is what extras=1 writes, step for step."""
    with envs.make("moba", num_envs=3, seed=4, opponent=SCRIPTED) as lean, \
            envs.make("moba", extras=1, num_envs=3, seed=4, opponent=SCRIPTED) as full:
        assert lean.heroes.shape == (3, 0) and lean.units.shape == (3, 0)
        assert full.heroes.shape == (3, 10 * len(HERO)) and full.units.shape[1] > 0
        rng = np.random.default_rng(6)
        creeps = 0.0
        for _ in range(600):
            actions = wild_actions(lean, rng, 0.05)
            lean.step(actions)
            full.step(actions)
            for key in ("observations", "rewards", "terminals", "truncations", "masks", "game", "terrain"):
                assert np.array_equal(lean.buffers[key], full.buffers[key]), key
            alive = full.units.reshape(3, -1, len(UNIT))
            counted = ((alive[..., UNIT["kind"]] == CREEP) & (alive[..., UNIT["alive"]] == 1)).sum(axis=1)
            assert np.array_equal(lean.game[:, GAME["creeps"]], counted)  # counted without the table
            creeps = max(creeps, float(counted.max()))
        assert creeps > 0


def paint(terrain: np.ndarray, heroes: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Team 0's cell codes with every living unit drawn, as moba.h paints them (heroes on top)."""
    codes = {2: (6, 7), 3: (8, 9), 4: (10, 11), 5: (12, 12)}
    cells = terrain.copy()
    for row in units[::-1]:
        if row[UNIT["alive"]]:
            cells[int(row[UNIT["y"]]), int(row[UNIT["x"]])] = codes[int(row[UNIT["kind"]])][int(row[UNIT["team"]]) & 1]
    for row in heroes[::-1]:
        if row[HERO["alive"]]:
            cells[int(row[HERO["y"]]), int(row[HERO["x"]])] = 4 + int(row[HERO["team"]])
    return cells


def test_window_is_the_map_around_the_hero_seen_from_its_team() -> None:
    with envs.make("moba", extras=1, num_envs=2, seed=8) as env:
        layout = env.single_observation_space.layout
        win = next(leaf for leaf in layout.leaves if leaf.name == "window")
        swap = np.arange(13)
        swap[4:12] = [5, 4, 7, 6, 9, 8, 11, 10]
        rng = np.random.default_rng(2)
        for _ in range(300):
            env.step(wild_actions(env, rng, 0.0))
            heroes, units, _, terrain = views(env)
            for m in range(2):
                cells = np.pad(paint(terrain[m], heroes[m], units[m]), VIEW, constant_values=WALL)
                for h in range(10):
                    x, y = int(heroes[m, h, HERO["x"]]), int(heroes[m, h, HERO["y"]])
                    want = cells[y:y + 2 * VIEW + 1, x:x + 2 * VIEW + 1]
                    if h >= 5:  # team 1 sees the map turned half a circle, its units as allies
                        want = swap[want[::-1, ::-1]]
                    row = env.observations[m * 10 + h]
                    got = row[win.offset:win.offset + win.nbytes].view(np.int8).reshape(win.shape)
                    assert np.array_equal(got, want), (m, h)


def test_fog_of_war_hides_enemy_heroes_no_ally_sees() -> None:
    with envs.make("moba", extras=1, num_envs=4, seed=9, opponent=SCRIPTED) as env:
        layout = env.single_observation_space.layout
        ent = next(leaf for leaf in layout.leaves if leaf.name == "entities")
        rng = np.random.default_rng(3)
        hidden = seen = 0
        for _ in range(1500):
            env.step(wild_actions(env, rng, 0.0))
            heroes, units, _, _ = views(env)
            for m in range(4):
                watchers = [(r[HERO["x"]], r[HERO["y"]]) for r in heroes[m, :5] if r[HERO["alive"]]]
                watchers += [(r[UNIT["x"]], r[UNIT["y"]]) for r in units[m]
                             if r[UNIT["alive"]] and r[UNIT["team"]] == 0]
                w = np.array(watchers)
                rows = env.observations[m * 10].view(np.float32)[: ent.count].reshape(ent.shape)
                for k in range(5):
                    enemy = heroes[m, 5 + k]
                    visible = bool(enemy[HERO["alive"]]) and bool(
                        (np.abs(w - (enemy[HERO["x"]], enemy[HERO["y"]])).max(axis=1) <= VIEW).any())
                    assert rows[5 + k, 0] == float(visible)
                    assert visible or not rows[5 + k].any(), "a hidden enemy's row leaks its state"
                    hidden += not visible
                    seen += visible
    assert hidden > 0 and seen > 0


def test_the_map_is_point_symmetric_and_connected() -> None:
    for size in (24, 40, 57):
        with envs.make("moba", extras=1, num_envs=1, map_size=size) as env:
            t = env.terrain.reshape(size, size)
            assert np.array_equal(t, t[::-1, ::-1])
            units = env.units.reshape(-1, len(UNIT))
            structs = units[np.isin(units[:, UNIT["kind"]], (TOWER, ANCIENT))]
            assert len(structs) == 8
            free = t != WALL
            seen = np.zeros_like(free)
            seen[size - 3, 2] = True  # team 0's fountain
            while True:  # flood fill over 8-neighbour moves
                grown = seen.copy()
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        grown |= np.roll(np.roll(seen, dy, 0), dx, 1)
                grown &= free
                if np.array_equal(grown, seen):
                    break
                seen = grown
            assert np.array_equal(seen, free), "some free cell cannot be reached"


def test_actions_are_multi_discrete_and_unplayed_rows_ignore_them() -> None:
    with envs.make("moba", num_envs=2, seed=4, opponent=SCRIPTED) as a, \
            envs.make("moba", num_envs=2, seed=4, opponent=SCRIPTED) as b:
        assert a.actions.shape == (20, 4)
        assert list(a.single_action_space.nvec) == [9, 17, 4, 17]
        rng = np.random.default_rng(5)
        for _ in range(300):
            acts = wild_actions(a, rng, 0.0)
            a.step(acts)
            acts.reshape(2, 10, 4)[:, 5:] = rng.integers(-5, 50, size=(2, 5, 4))
            b.step(acts)
            assert np.array_equal(a.observations, b.observations)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(24, 48), wave=st.integers(1, 40), respawn=st.integers(1, 30), limit=st.integers(1, 300),
       opponent=st.integers(0, 2), player=st.integers(0, 2), seed=st.integers(0, 2**63),
       wild=st.sampled_from([0.0, 0.3, 1.0]))
def test_wild_actions_and_params_keep_every_invariant(size: int, wave: int, respawn: int, limit: int,
                                                      opponent: int, player: int, seed: int, wild: float) -> None:
    with envs.make("moba", extras=1, num_envs=2, seed=seed, map_size=size, wave_interval=wave, respawn_time=respawn,
                   max_steps=limit, opponent=opponent, player=player, wave_size=8) as env:
        rng = np.random.default_rng(seed % 2**32)
        inv = Invariants(env)
        for _ in range(250):
            env.step(wild_actions(env, rng, wild))
            inv.check()
        entities = env.observations[:, :680].view(np.float32)
        assert np.isfinite(entities).all() and np.all(np.abs(entities) <= 4)
