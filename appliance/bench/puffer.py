"""PufferLib 3's own PPO trainer (``pufferlib.pufferl.PuffeRL``) on Gymnasium's CartPole-v1, for `bench train`.

PufferLib is a peer, not a dependency: ``pufferlib-core`` pins an exact torch
release (installing it replaces the one you have), so no extra of this package
pulls it in. Where it is installed and its trainer can run (its advantage kernel,
``pufferlib._C``, loads only beside a CUDA runtime), this trains CartPole-v1 with
PufferLib's default hyperparameters (its ``default.ini``: Adam here instead of
Muon, which needs another package) through its own vectorization until its mean
episode return reaches the target; elsewhere it says why it was left out.
"""

from __future__ import annotations

import time
from typing import Any


def unavailable() -> str | None:
    """Why PufferLib's trainer cannot run here, or None when it can."""
    try:
        import pufferlib.pufferl as pufferl
    except Exception as exc:  # noqa: BLE001 - any import failure means "not here", named
        return f"pufferlib's trainer does not import ({type(exc).__name__}: {exc})"
    if not getattr(pufferl, "_C_AVAILABLE", False):
        return "pufferlib._C (its advantage kernel) did not load: it needs a CUDA runtime"
    return None


def train_cartpole(seed: int, target: float, seconds_limit: float, device: str) -> dict[str, Any]:
    """One run to ``target``; the same record fields as the other trainers in `bench train`."""
    import gymnasium
    import pufferlib.emulation
    import pufferlib.models
    import pufferlib.pufferl as pufferl
    import pufferlib.vector

    def make(buf: Any = None, seed: int = 0, **_: Any) -> Any:
        return pufferlib.emulation.GymnasiumPufferEnv(
            env_creator=lambda: gymnasium.make("CartPole-v1"), buf=buf, seed=seed
        )

    vecenv = pufferlib.vector.make(make, num_envs=8, backend=pufferlib.vector.Serial, seed=seed)
    policy = pufferlib.models.Default(vecenv.driver_env, hidden_size=64).to(device)
    config = dict(
        seed=seed, torch_deterministic=False, cpu_offload=False, device=device, optimizer="adam",
        anneal_lr=True, precision="float32", total_timesteps=2_000_000, learning_rate=0.015, gamma=0.995,
        gae_lambda=0.90, update_epochs=1, clip_coef=0.2, vf_coef=2.0, vf_clip_coef=0.2, max_grad_norm=1.5,
        ent_coef=0.001, adam_beta1=0.95, adam_beta2=0.999, adam_eps=1e-8, data_dir="/tmp/appliance-bench-puffer",
        checkpoint_interval=10**9, batch_size="auto", minibatch_size=1024, max_minibatch_size=32768,
        bptt_horizon=128, compile=False, compile_mode="default", compile_fullgraph=True, vtrace_rho_clip=1.0,
        vtrace_c_clip=1.0, prio_alpha=0.8, prio_beta0=0.2, use_rnn=False, env="CartPole-v1",
    )
    trainer = pufferl.PuffeRL(config, vecenv, policy)
    start = time.perf_counter()
    reached, mean = None, float("nan")
    try:
        while trainer.global_step < config["total_timesteps"] and time.perf_counter() - start < seconds_limit:
            trainer.evaluate()
            logs = trainer.train() or {}
            returns = [v for k, v in logs.items() if k.endswith("episode_return")]
            if returns:
                mean = float(returns[0])
                if mean >= target:
                    reached = time.perf_counter() - start
                    break
    finally:
        vecenv.close()
        trainer.utilization.stop()  # its sampler thread is not a daemon: the process would never exit
    wall = time.perf_counter() - start
    return {
        "seed": seed, "steps_per_second": trainer.global_step / wall, "seconds_to_target": reached,
        "agent_steps": int(trainer.global_step), "wall_seconds": wall,
        "mean_return": None if mean != mean else mean,
    }
