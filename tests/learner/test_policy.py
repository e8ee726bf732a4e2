"""Policies: LSTM state resets on episode end, replay from the stored state, grid CNN shapes."""

import gymnasium
import numpy as np
import pytest
import torch

from actors import SerialPool
from learner.policy import Policy
from learner.rollout import Rollout


def _lstm_policy() -> Policy:
    torch.manual_seed(0)
    space = gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)
    return Policy(space, gymnasium.spaces.Discrete(2), kind="mlp", hidden=16, lstm=True, lstm_hidden=8)


def test_lstm_state_zeroed_only_for_rows_that_ended() -> None:
    policy = _lstm_policy()
    obs = torch.randn(3, 4)
    state = (torch.randn(1, 3, 8), torch.randn(1, 3, 8))
    starts = torch.tensor([False, True, False])
    _, _, _, after = policy.act(obs, state, starts)
    _, _, _, fresh = policy.act(obs, policy.initial_state(3), torch.zeros(3, dtype=torch.bool))
    _, _, _, kept = policy.act(obs, state, torch.zeros(3, dtype=torch.bool))
    # The ended row behaves exactly as from a zero state, the others as from their own state.
    torch.testing.assert_close(after[0][:, 1], fresh[0][:, 1], rtol=0, atol=0)
    torch.testing.assert_close(after[0][:, [0, 2]], kept[0][:, [0, 2]], rtol=0, atol=0)
    assert not torch.equal(after[0][:, 1], kept[0][:, 1])


def test_rollout_replay_from_stored_state_reproduces_collection() -> None:
    policy = _lstm_policy()
    pool = SerialPool("cartpole", num_envs=6, seed=3)
    rollout = Rollout(policy, pool, num_steps=40, device=torch.device("cpu"))
    rollout.restart(3)
    rollout.collect()  # random-ish policy: many episodes end within 40 steps
    rollout.collect()  # second rollout starts from a carried-over, non-zero LSTM state
    assert rollout.starts[1:].any(), "the test needs episode ends inside the rollout"
    assert rollout.state0[0].abs().sum() > 0
    b = rollout.batch()
    with torch.no_grad():
        logprobs, _, values = policy(b["obs"], b["actions"], b["state"], b["starts"])
    torch.testing.assert_close(logprobs, b["logprobs"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(values, b["values"], rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # replaying from a zero state instead gives different values
        _, _, wrong = policy(b["obs"], b["actions"], policy.initial_state(6), b["starts"])
    assert not torch.allclose(wrong, b["values"], atol=1e-5)
    pool.close()


def test_grid_cnn_on_int8_window() -> None:
    space = gymnasium.spaces.Box(-1, 5, (11, 11), np.int8)
    policy = Policy(space, gymnasium.spaces.Discrete(4), kind="cnn", hidden=32)
    obs = torch.randint(-1, 6, (5, 11, 11), dtype=torch.int8)
    actions, logprobs, values, _ = policy.act(obs, None, torch.zeros(5, dtype=torch.bool))
    assert actions.shape == logprobs.shape == values.shape == (5,)
    assert int(actions.max()) < 4
    greedy, _ = policy.greedy(obs, None, torch.zeros(5, dtype=torch.bool))
    assert greedy.shape == (5,)


def test_bad_policy_kind_is_named() -> None:
    space = gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)
    with pytest.raises(ValueError, match="policy.kind"):
        Policy(space, gymnasium.spaces.Discrete(2), kind="transformer")


def test_embed_encoder_gather_path_equals_dense_path_and_learns_through_it() -> None:
    """Inference sums table rows (embedding_bag); training multiplies one-hot rows: the same function."""
    torch.manual_seed(0)
    space = gymnasium.spaces.Box(0, 6, (11, 11), np.int8)
    policy = Policy(space, gymnasium.spaces.Discrete(4), kind="embed", hidden=32)
    obs = torch.randint(0, 7, (9, 11, 11), dtype=torch.int8)
    obs[0, 0, 0] = 9  # out-of-range codes are clamped, never index past the table
    with torch.inference_mode():
        gathered = policy.encoder(obs)
    dense = policy.encoder(obs)
    assert dense.requires_grad
    torch.testing.assert_close(gathered, dense.detach(), rtol=1e-5, atol=1e-5)
    # A code change in one cell changes the features: the table is read per cell and code.
    other = obs.clone()
    other[1, 5, 5] = (other[1, 5, 5] + 1) % 7
    with torch.inference_mode():
        assert not torch.allclose(policy.encoder(other)[1], gathered[1])
        torch.testing.assert_close(policy.encoder(other)[2:], gathered[2:])
    dense.sum().backward()
    grad = policy.encoder.table.grad
    assert grad is not None and grad.abs().sum() > 0
    # Only the (cell, code) rows some observation holds get gradient.
    seen = torch.zeros(grad.shape[0], dtype=torch.bool)
    index = obs.reshape(9, -1).long().clamp(0, 6) + torch.arange(121) * 7
    seen[index.flatten()] = True
    assert grad[~seen].abs().sum() == 0 and (grad[seen].abs().sum(1) > 0).float().mean() > 0.9


def test_embed_encoder_wants_int_grids() -> None:
    with pytest.raises(ValueError, match="policy.kind 'embed'"):
        Policy(gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32), gymnasium.spaces.Discrete(2), kind="embed")


def test_categorical_head_matches_torch_distributions() -> None:
    """The lean categorical scores exactly as torch's and samples from the same distribution."""
    torch.manual_seed(0)
    head = Policy(gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32), gymnasium.spaces.MultiDiscrete([3, 5]),
                  kind="mlp", hidden=8).head
    x = torch.randn(6, 8)
    actions = torch.stack([torch.randint(0, 3, (6,)), torch.randint(0, 5, (6,))], dim=-1)
    logprobs, entropies = head.evaluate(x, actions)
    logits = head.heads[0].net(x).split([3, 5], dim=-1)
    dists = [torch.distributions.Categorical(logits=part) for part in logits]
    torch.testing.assert_close(logprobs, dists[0].log_prob(actions[:, 0]) + dists[1].log_prob(actions[:, 1]))
    torch.testing.assert_close(entropies, dists[0].entropy() + dists[1].entropy())
    many = x[:1].expand(40_000, 8)
    sampled, _ = head.sample(many)
    frequency = torch.bincount(sampled[:, 1], minlength=5).float() / len(sampled)
    torch.testing.assert_close(frequency, dists[1].probs[0].detach(), rtol=0, atol=0.01)


def _snake_policy(**accelerate) -> Policy:
    torch.manual_seed(0)
    space = gymnasium.spaces.Box(0, 6, (11, 11), np.int8)
    return Policy(space, gymnasium.spaces.Discrete(4), kind="embed", hidden=32).accelerate(**accelerate)


def test_bf16_precision_runs_the_encoder_in_bfloat16_and_keeps_heads_float32() -> None:
    plain, bf16 = _snake_policy(), _snake_policy(precision="bf16")
    assert plain.state_dict().keys() == bf16.state_dict().keys()
    obs = torch.randint(0, 7, (64, 11, 11), dtype=torch.int8)
    actions = torch.randint(0, 4, (1, 64))
    starts = torch.zeros(1, 64, dtype=torch.bool)
    lp32, ent32, v32 = plain(obs.unsqueeze(0), actions, None, starts)
    lp16, ent16, v16 = bf16(obs.unsqueeze(0), actions, None, starts)
    assert lp16.dtype == v16.dtype == torch.float32
    assert not torch.equal(v16, v32)  # the encoder really ran in bfloat16...
    torch.testing.assert_close(v16, v32, rtol=0.05, atol=0.05)  # ...and agrees to bfloat16's precision
    torch.testing.assert_close(lp16, lp32, rtol=0.05, atol=0.05)
    (lp16.sum() + v16.sum()).backward()
    assert bf16.encoder.table.grad is not None and torch.isfinite(bf16.encoder.table.grad).all()
    with pytest.raises(ValueError, match="train.precision"):
        _snake_policy(precision="fp8")


@pytest.mark.timeout(300)
def test_compiled_encoder_matches_eager_and_keeps_parameter_names() -> None:
    plain, compiled = _snake_policy(), _snake_policy(compile=True)
    assert plain.state_dict().keys() == compiled.state_dict().keys()
    obs = torch.randint(0, 7, (16, 11, 11), dtype=torch.int8)
    starts = torch.zeros(16, dtype=torch.bool)
    with torch.inference_mode():
        torch.testing.assert_close(compiled.value(obs, None, starts), plain.value(obs, None, starts))
    assert compiled.__dict__["_compiled"].compiled is not None  # compiled for real, no fallback


def test_compile_failure_falls_back_to_eager_with_a_warning() -> None:
    policy = _snake_policy(compile=True)

    def broken(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("no compiler here")

    policy.__dict__["_compiled"].compiled = broken  # what a compiler failure on first use looks like
    obs = torch.randint(0, 7, (4, 11, 11), dtype=torch.int8)
    with pytest.warns(UserWarning, match="running it eagerly"):
        values = policy.value(obs, None, torch.zeros(4, dtype=torch.bool))
    torch.testing.assert_close(values, _snake_policy().value(obs, None, torch.zeros(4, dtype=torch.bool)))
    assert policy.__dict__["_compiled"].compiled is None
