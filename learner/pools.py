"""Building the env pool a learner rank reads from, as the ``[env]`` and ``[pool]`` sections say."""

from __future__ import annotations

import os
from typing import Any

POOL_KINDS = ("serial", "actors")


def rank_seed(seed: int, rank: int) -> int:
    """Each rank's envs get their own seed stream."""
    return seed + 1_000_003 * rank


def rank_cores(local_rank: int, local_world: int, allowed: list[int]) -> list[int]:
    """This rank's share of the node's cores, so ranks on one node never pin actors to the same core.

    The allowed cores are cut into ``local_world`` contiguous slices; with fewer
    cores than local ranks, ranks share cores round-robin (one core each).
    """
    if local_world < 1 or not 0 <= local_rank < local_world:
        raise ValueError(f"local_rank must be in [0, {local_world}), got {local_rank}")
    if not allowed:
        raise ValueError("allowed must name at least one core")
    cores = sorted(allowed)
    if len(cores) < local_world:
        return [cores[local_rank % len(cores)]]
    share, extra = divmod(len(cores), local_world)
    start = local_rank * share + min(local_rank, extra)
    return cores[start : start + share + (local_rank < extra)]


def make_pool(config: dict[str, Any], rank: int = 0) -> Any:
    """``[pool] kind = "serial"``: in-process ``actors.SerialPool``; ``"actors"``: ``actors.ActorPool``.

    The actors pool takes ``num_actors`` and ``batch_size`` (envs per batch,
    0 = half the envs, so two batches are in flight), and pins its actors to
    this rank's slice of the node's cores (``LOCAL_RANK`` of ``LOCAL_WORLD_SIZE``).
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
            cores=rank_cores(
                int(os.environ.get("LOCAL_RANK", 0)),
                int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
                sorted(os.sched_getaffinity(0)),
            ),
            **params,
        )
    raise ValueError(f"pool.kind must be one of {', '.join(POOL_KINDS)}, got {kind!r}")
