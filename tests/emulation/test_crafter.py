"""Crafter by name: the image, seeded worlds, achievements as episode stats, through the pool."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("crafter", reason="needs the [crafter] extra: pip install -e \".[crafter]\"")

import envs  # noqa: E402
from actors import ActorPool  # noqa: E402
from envs.emulation.crafter import CrafterEnv  # noqa: E402


def test_image_and_actions() -> None:
    with envs.make("crafter", num_envs=2, seed=0) as vec:
        assert vec.observations.shape == (2, 64, 64, 3) and vec.observations.dtype == np.uint8
        assert vec.single_action_space.n == 17
        assert vec.observations.any()


def test_a_seed_reproduces_a_world() -> None:
    # Only the world: Crafter despawns creatures picked from a set of objects, whose order
    # follows memory addresses, so two runs from one seed part ways once it does.
    a, b, c = (CrafterEnv() for _ in range(3))
    assert np.array_equal(a.reset(seed=4)[0], b.reset(seed=4)[0])
    assert not np.array_equal(a.reset(seed=4)[0], c.reset(seed=5)[0])


def test_achievements_are_episode_stats_and_death_terminates() -> None:
    # Short episodes (length 60) truncate; the stats are per-episode unlock indicators, so their means are rates.
    with envs.make("crafter", num_envs=2, seed=0, length=60) as vec:
        rng = np.random.default_rng(0)
        ended = 0
        for _ in range(130):
            vec.actions[:] = rng.integers(0, 17, 2)
            vec.step()
            assert not (vec.terminals & vec.truncations).any()
            ended += int(vec.truncations.sum() + vec.terminals.sum())
        stats = vec.episode_stats()
    assert stats["episodes"] == ended >= 4
    keys = [k for k in stats if k.startswith("achievement_")]
    assert len(keys) == 22 and "achievement_collect_wood" in keys
    assert all(0.0 <= stats[k] <= 1.0 for k in keys)
    assert stats["achievement_wake_up"] < 1.0 or stats["episode_length"] == 60  # a rate, not a count
    assert sum(stats[k] for k in keys) > 0  # random play unlocks something in 60 steps


def test_achievement_stats_cross_the_pool() -> None:
    with ActorPool("crafter", num_envs=2, num_actors=2, batch_size=1, seed=0, timeout=30.0, length=20) as pool:
        pool.async_reset(0)
        actions = np.zeros((1,), np.int64)
        for _ in range(2 * 21):
            pool.recv()
            pool.send(actions)
        stats = pool.episode_stats()
    assert stats["episodes"] >= 2
    assert "achievement_collect_wood" in stats and stats["episode_length"] == 20


def test_a_missing_numba_is_named_and_a_present_one_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    from envs.emulation import crafter as crafter_mod

    monkeypatch.setattr(crafter_mod, "numba_missing", lambda: True)
    with pytest.warns(RuntimeWarning, match="pip install numba"):
        crafter_mod.creator_for("crafter")
    monkeypatch.setattr(crafter_mod, "numba_missing", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        crafter_mod.creator_for("crafter")


def test_numba_compiles_the_world_generator() -> None:
    """The [crafter] extra brings numba; with it opensimplex's noise is compiled, not plain Python."""
    from opensimplex import internals

    from envs.emulation import crafter as crafter_mod

    assert not crafter_mod.numba_missing()
    assert hasattr(internals._noise3, "py_func"), "opensimplex's noise is not numba-compiled"
