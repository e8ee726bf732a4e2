"""Building the env pool a learner rank reads from, as the ``[env]`` and ``[pool]`` sections say."""

from __future__ import annotations

from typing import Any

POOL_KINDS = ("serial", "actors")


def rank_seed(seed: int, rank: int) -> int:
    """Each rank's envs get their own seed stream."""
    return seed + 1_000_003 * rank


def make_pool(config: dict[str, Any], rank: int = 0) -> Any:
    """``[pool] kind = "serial"``: in-process ``actors.SerialPool``; ``"actors"``: ``actors.ActorPool``.

    The actors pool takes ``num_actors`` and ``batch_size`` (envs per batch,
    0 = half the envs, so two batches are in flight).
    """
    env, pool = config["env"], config.get("pool", {"kind": "serial"})
    kind = pool.get("kind", "serial")
    seed = rank_seed(config["train"]["seed"], rank)
    params = dict(env.get("params", {}))
    if kind == "serial":
        from actors import SerialPool

        return SerialPool(env["name"], num_envs=env["num_envs"], seed=seed, **params)
    if kind == "actors":
        try:
            from actors import ActorPool  # type: ignore[attr-defined]
        except ImportError:
            raise ValueError("pool.kind 'actors' needs actors.ActorPool, which this install lacks") from None
        batch = pool.get("batch_size", 0) or max(1, env["num_envs"] // 2)
        return ActorPool(
            env["name"],
            num_envs=env["num_envs"],
            num_actors=pool.get("num_actors", 1),
            batch_size=batch,
            seed=seed,
            **params,
        )
    raise ValueError(f"pool.kind must be one of {', '.join(POOL_KINDS)}, got {kind!r}")
