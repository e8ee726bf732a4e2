"""NetHack (NLE) and MiniHack by name: the observation dict packed as it is, seeded, through the pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

# nle pins gymnasium==1.2.0, so the [test] extra leaves it out (it would move Gymnasium for
# every test); pip install -e ".[nethack]" adds it.
nle = pytest.importorskip("nle", reason="needs the [nethack] extra: pip install -e \".[nethack]\"")

from test_emulated_pool import check_pool  # noqa: E402

import envs  # noqa: E402
from envs.emulation import nethack  # noqa: E402
from learner.unpack import Unpacker  # noqa: E402


def raw_env(name: str, seed: int):
    env = nethack.creator_for(name)()
    obs, _ = env.reset(seed=seed)
    return env, obs


def test_score_task_packs_the_nle_dict_as_it_is() -> None:
    vec = envs.make("nethack/score", num_envs=2, seed=5)
    ref, obs = raw_env("nethack/score", 6)  # row 1 is seeded with seed + 1
    try:
        layout = vec.obs_layout
        assert sorted(leaf.name for leaf in layout.leaves) == sorted(nethack.OBSERVATION_KEYS)
        for leaf in layout.leaves:
            assert leaf.dtype == ref.observation_space[leaf.name].dtype, leaf.name  # integers stay integers
            assert leaf.shape == ref.observation_space[leaf.name].shape, leaf.name
        rng = np.random.default_rng(0)
        for _ in range(20):
            action = int(rng.integers(vec.single_action_space.n))
            vec.actions[:] = action
            vec.step()
            obs, *_ = ref.step(action)
            unpacked = Unpacker(layout).unpack(torch.from_numpy(vec.observations[1:2].copy()))
            for key in nethack.OBSERVATION_KEYS:
                np.testing.assert_array_equal(unpacked[key][0].numpy(), obs[key], err_msg=key)
    finally:
        vec.close()
        ref.close()


def test_drop_keys_leave_nle_keys_out() -> None:
    full = envs.buffer_spec("nethack/score", 1)["observations"][0][1]
    spec = envs.buffer_spec("nethack/score", 1, drop_keys=("inv_strs", "tty_chars", "tty_colors"))
    assert full - spec["observations"][0][1] >= 55 * 80 + 2 * 24 * 80
    with pytest.raises(ValueError, match="no key path 'screen_descriptions'"):
        envs.buffer_spec("nethack/score", 1, drop_keys=("screen_descriptions",))  # not asked of NLE


def test_every_task_resolves_and_unknown_ones_list_the_known() -> None:
    for task in nethack.TASKS:
        assert envs.registry.missing_extra(f"nethack/{task}") is None
        assert nethack.env_id(f"nethack/{task}").startswith("NetHack")
    with pytest.raises(ValueError, match=r"unknown NetHack task 'nope' \(known: challenge, eat, gold, oracle, "
                                         r"score, scout, staircase\)"):
        envs.make("nethack/nope")
    with pytest.raises(ValueError, match=r"unknown MiniHack env 'nope' \(known: .*room-5x5"):
        envs.make("minihack/nope")


def test_a_seed_reproduces_a_game() -> None:
    a, b, c = (envs.make("nethack/score", num_envs=1, seed=s) for s in (11, 11, 12))
    try:
        assert np.array_equal(a.observations, b.observations)
        assert not np.array_equal(a.observations, c.observations)
    finally:
        for v in (a, b, c):
            v.close()


def test_nethack_through_the_pool() -> None:
    check_pool("nethack/score", steps=30)


def test_minihack_room_through_the_pool() -> None:
    seen = check_pool("minihack/room-5x5", steps=120)
    assert seen["ended"] > 0


@pytest.mark.parametrize("loop", ["compiled", "python"])
@pytest.mark.parametrize(("name", "in_place"), [
    ("nethack/score", sorted(nethack.OBSERVATION_KEYS)),
    ("minihack/room-5x5", ["blstats", "chars", "colors", "glyphs", "message", "specials"]),  # not the crops
])
def test_nle_writes_its_observation_into_the_rows(name: str, in_place: list[str], loop: str) -> None:
    """NLE's buffers are the rows themselves; every step matches a twin whose envs copy into them."""
    import gymnasium

    from envs.emulation import steploop
    from envs.emulation.gym import GymnasiumVecEnv

    if loop not in steploop.IMPLEMENTATIONS:
        pytest.skip("the compiled step loop is not built")
    params = {"max_episode_steps": 40}  # truncations, so final_observations are checked too
    direct = GymnasiumVecEnv(nethack.creator_for(name, **params), num_envs=3, seed=7)
    create = nethack.creator_for(name, **params)
    copied = GymnasiumVecEnv(lambda: gymnasium.Wrapper(create()), num_envs=3, seed=7)  # hides observe_into
    try:
        assert direct.in_place == in_place and copied.in_place == []
        for vec in (direct, copied):
            vec._loop_with(*steploop.IMPLEMENTATIONS[loop])
        glyphs = direct.envs[0].unwrapped.nethack._obs_buffers["glyphs"]
        assert np.shares_memory(glyphs, direct.observations[0]) and not np.shares_memory(glyphs, direct.observations[1])
        rng = np.random.default_rng(3)
        truncated = 0
        for t in range(130):
            actions = rng.integers(0, direct.single_action_space.n, size=3)
            direct.step(actions)
            copied.step(actions)
            for key in ("observations", "rewards", "terminals", "truncations"):
                np.testing.assert_array_equal(direct.buffers[key], copied.buffers[key], err_msg=f"{key} at {t}")
            rows = direct.truncations
            np.testing.assert_array_equal(direct.final_observations[rows], copied.final_observations[rows])
            truncated += int(rows.sum())
        assert truncated >= 3
    finally:
        direct.close()
        copied.close()


def test_nle_keeps_its_own_buffers_once_reset() -> None:
    """After the first reset NLE takes no new buffers: nothing is taken and the env steps on as before."""
    env = nethack.creator_for("nethack/score")()
    try:
        env.reset(seed=1)
        row = {"blstats": np.zeros_like(env.observation_space["blstats"].sample())}
        assert env.observe_into(row) == []
        obs, *_ = env.step(0)
        assert obs["blstats"] is not row["blstats"] and obs["blstats"].any()
    finally:
        env.close()
