"""The game families' own policies: NetHack's glyph window + blstats + message, Crafter's small CNN."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from gymnasium import spaces

import envs
from learner import config as C
from learner.nethack_encoder import hero_window
from learner.policy import Policy
from learner.unpack import Unpacker

needs_nle = pytest.mark.skipif(importlib.util.find_spec("nle") is None,
                               reason="needs the [nethack] extra: pip install -e \".[nethack]\"")
needs_minihack = pytest.mark.skipif(importlib.util.find_spec("minihack") is None,
                                    reason="needs the [nethack] extra: pip install -e \".[nethack]\"")
needs_crafter = pytest.mark.skipif(importlib.util.find_spec("crafter") is None,
                                   reason="needs the [crafter] extra: pip install -e \".[crafter]\"")


def test_hero_window_centres_on_the_hero_and_marks_cells_off_the_map() -> None:
    glyphs = torch.arange(4 * 6, dtype=torch.int16).view(1, 4, 6).repeat(2, 1, 1)
    stats = torch.tensor([[2, 1], [5, 3]])  # x (column), y (row)
    window = hero_window(glyphs, stats, 3, fill=-1)
    assert window.shape == (2, 3, 3) and window.dtype == torch.int64
    assert window[0].tolist() == [[1, 2, 3], [7, 8, 9], [13, 14, 15]]
    assert window[1].tolist() == [[16, 17, -1], [22, 23, -1], [-1, -1, -1]]  # the map's bottom-right corner


@needs_minihack
def test_hero_window_matches_minihacks_own_crop() -> None:
    """MiniHack computes ``glyphs_crop`` itself: inside the map, the window cut from ``glyphs`` is the same."""
    env = envs.make("minihack/room-15x15", num_envs=8, seed=3)
    unpacker = Unpacker(env.single_observation_space.layout)
    rng = np.random.default_rng(0)
    checked = 0
    try:
        for _ in range(30):
            env.actions[:] = rng.integers(0, env.single_action_space.n, size=env.actions.shape)
            env.step()
            obs = unpacker.unpack(torch.from_numpy(env.observations))
            window = hero_window(obs["glyphs"], obs["blstats"], 9, fill=-1)
            inside = window >= 0
            assert torch.equal(window[inside], obs["glyphs_crop"].long()[inside])
            checked += int(inside.sum())
            assert not inside.all()  # a 15x15 room in a 21x79 map: some windows reach past the map's edges
    finally:
        env.close()
    assert checked > 8 * 30 * 40


def _act(policy: Policy, rows: np.ndarray) -> torch.Tensor:
    obs = torch.from_numpy(rows)
    actions, logprobs, values, _ = policy.act(obs, None, torch.zeros(len(rows), dtype=torch.bool))
    assert torch.isfinite(logprobs).all() and torch.isfinite(values).all()
    return actions


@needs_nle
def test_nethack_default_policy_reads_the_score_task_and_learns_from_its_rows() -> None:
    cfg = C.load("nethack/score")
    assert cfg["policy"]["kind"] == "nethack"
    env = envs.make("nethack/score", num_envs=4, seed=1, **cfg["env"]["params"])
    try:
        assert sorted(leaf.name for leaf in env.single_observation_space.layout.leaves) == [
            "blstats", "glyphs", "message"]
        torch.manual_seed(0)
        policy = Policy(env.single_observation_space, env.single_action_space, kind="nethack", hidden=32)
        actions = _act(policy, env.observations)
        assert actions.shape == (4,) and int(actions.max()) < env.single_action_space.n
        # Each part of the observation reaches the features: changing the glyph under the hero, a
        # blstats entry or the message changes them.
        rows = torch.from_numpy(env.observations.copy())
        base = policy.encoder(rows)
        obs = policy.encoder.unpacker.unpack(rows)  # views of ``rows``
        x, y = int(obs["blstats"][0, 0]), int(obs["blstats"][0, 1])
        obs["glyphs"][0, y, x] = 0
        assert not torch.equal(policy.encoder(rows)[0], base[0])
        assert torch.equal(policy.encoder(rows)[1:], base[1:])
        obs["blstats"][1, 10] += 5  # hit points
        obs["message"][2, :] = 0
        obs["message"][2, :5] = torch.tensor(list(b"Ouch!"), dtype=torch.uint8)
        after = policy.encoder(rows)
        assert not torch.equal(after[1], base[1]) and not torch.equal(after[2], base[2])
    finally:
        env.close()


@needs_minihack
def test_minihack_default_policy_reads_minihacks_crop() -> None:
    cfg = C.load("minihack/room-5x5")
    assert cfg["policy"]["kind"] == "nethack"
    env = envs.make("minihack/room-5x5", num_envs=3, seed=2, **cfg["env"]["params"])
    try:
        policy = Policy(env.single_observation_space, env.single_action_space, kind="nethack", hidden=32)
        assert policy.encoder.window and policy.encoder.crop == 9
        assert _act(policy, env.observations).shape == (3,)
    finally:
        env.close()


def test_nethack_policy_refuses_an_observation_without_glyphs_or_blstats() -> None:
    from envs.emulation.layout import layout_of

    space = spaces.Dict({"glyphs": spaces.Box(0, 5976, (21, 79), np.int16), "message": spaces.Box(0, 255, (256,),
                                                                                                   np.uint8)})
    packed = layout_of(space).row_space()
    with pytest.raises(ValueError, match="'glyphs' \\(or 'glyphs_crop'\\) and 'blstats'.*glyphs, message"):
        Policy(packed, spaces.Discrete(4), kind="nethack")
    with pytest.raises(ValueError, match="policy.kind 'nethack'"):
        Policy(spaces.Box(0, 1, (3,), np.float32), spaces.Discrete(4), kind="nethack")


def test_small_image_policy_reads_channels_last_frames_and_refuses_others() -> None:
    space = spaces.Box(0, 255, (64, 64, 3), np.uint8)
    policy = Policy(space, spaces.Discrete(17), kind="image_small", hidden=32)
    frames = torch.randint(0, 255, (5, 64, 64, 3), dtype=torch.uint8)
    assert _act(policy, frames.numpy()).shape == (5,)
    # The 8x8 map the convolutions end on still tells the frame's halves apart.
    left, right = frames.clone(), frames.clone()
    left[:, :, :32] = 0
    right[:, :, 32:] = 0
    assert not torch.allclose(policy.encoder(left), policy.encoder(right))
    with pytest.raises(ValueError, match="image_small"):
        Policy(spaces.Box(-1, 1, (8,), np.float32), spaces.Discrete(2), kind="image_small")


@needs_crafter
def test_crafter_default_config_trains_the_small_cnn_on_every_core() -> None:
    cfg = C.load("crafter")
    assert cfg["policy"]["kind"] == "image_small" and cfg["pool"]["kind"] == "actors"
    C.validate(cfg)
