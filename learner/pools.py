"""Building the env pool a learner rank reads from, as the ``[env]`` and ``[pool]`` sections say."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from .schema import EnvConfig, PoolConfig, RemoteConfig

# The ``[remote]`` section's defaults (remote actor hosts, `appliance actors serve`).
REMOTE: dict[str, Any] = asdict(RemoteConfig())  # the [remote] defaults (learner/schema.py)


def with_remote(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with a ``[remote]`` section (defaults for the keys it lacks)."""
    config["remote"] = {**REMOTE, **config.get("remote", {})}
    return config


def remote_bind(bind: str, local_rank: int) -> str:
    """Rank ``local_rank``'s address: the port of ``tcp://HOST:PORT`` plus the local rank."""
    head, sep, port = bind.rpartition(":")
    if not bind.startswith("tcp://") or not sep or not port.isdigit():
        raise ValueError(f"remote.bind (--remote-actors) must look like tcp://*:PORT, got {bind!r}")
    return f"{head}:{int(port) + local_rank}"


def rank_seed(seed: int, rank: int) -> int:
    """Each rank's envs get their own seed stream (the actors pool then mixes in the actor index)."""
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


def pool_order(config: dict[str, Any]) -> str:
    """``[pool] order``: "turn" (groups round-robin: a run repeats exactly) or "ready"
    (whichever group is ready first: actors never wait for each other, runs do not repeat)."""
    return PoolConfig.from_config(config.get("pool", {})).order


def actor_layout(config: dict[str, Any], cores: int | None = None) -> tuple[int, int]:
    """``(num_actors, batch_size)`` for ``[pool] kind = "actors"``.

    Precedence, per value: a value the config pins (``num_actors`` or
    ``batch_size`` > 0, from the file or ``--set``) wins; else the layout that
    ``appliance bench actors --autotune [--order ready]`` saved for this env, core
    count and ``pool.order``
    (``actors.autotune.load``); else one actor per core and two groups (in order
    "ready", two groups per actor: each actor's envs in two parts).
    ``num_envs`` always stays the config's (it is a learning hyperparameter):
    from a saved layout only the actor count and the number of groups
    (``num_envs / batch_size``) are taken, and only where they divide it.
    """
    env, pool = EnvConfig.from_config(config["env"]), PoolConfig.from_config(config.get("pool", {}))
    num_envs = env.num_envs
    local = pool.order == "ready"
    actors, batch = pool.num_actors, pool.batch_size
    saved = None
    if not actors or not batch:
        from actors import autotune

        saved = autotune.load(env.name, cores, pool.order)
    if not actors:
        if saved is not None and num_envs % saved["num_actors"] == 0:
            actors = saved["num_actors"]
        else:
            actors = cores if cores is not None else len(os.sched_getaffinity(0))
            while actors > 1 and num_envs % actors:
                actors -= 1
    if not batch:
        from actors.pool import plan_layout

        if saved is not None:
            groups = max(1, saved["num_envs"] // saved["batch_size"])
        else:  # two batches in flight per actor: in order "ready" each actor's envs make two groups
            groups = 2 * actors if local else 2
        for g in (groups, 1):
            if num_envs % g:
                continue
            try:
                plan_layout(num_envs, actors, num_envs // g, local=local)
            except ValueError:
                continue
            batch = num_envs // g
            break
        if not batch:  # no grouping fits: the layout's own reason, in the config's terms
            try:
                plan_layout(num_envs, actors, num_envs, local=local)
            except ValueError as e:
                raise ValueError(f"no actor-pool layout fits env.num_envs = {num_envs} with pool.num_actors = "
                                 f"{actors}: {e}") from None
    return actors, batch


def make_pool(config: dict[str, Any], rank: int = 0) -> Any:
    """``[pool] kind = "serial"``: in-process ``actors.SerialPool``; ``"actors"``: ``actors.ActorPool``.

    The actors pool's layout comes from :func:`actor_layout`; its actors are
    pinned to this rank's slice of the node's cores (``LOCAL_RANK`` of
    ``LOCAL_WORLD_SIZE``, :func:`rank_cores`). Seeds: rank r's pool starts from
    ``rank_seed(seed, r)`` and its actor k from
    ``actors.pool.actor_seed(rank_seed(seed, r), k)``, so no two ranks or
    actors share a stream.
    """
    env, pool = EnvConfig.from_config(config["env"]), PoolConfig.from_config(config.get("pool", {}))
    seed = rank_seed(config["train"]["seed"], rank)
    if int(config.get("remote", {}).get("hosts", 0) or 0) > 0:
        return make_remote_pool(config, seed)
    if pool.kind == "serial":
        from actors import SerialPool

        return SerialPool(env.name, num_envs=env.num_envs, seed=seed, **env.params)
    if pool.kind == "actors":
        try:
            from actors import ActorPool
        except ImportError:
            raise ValueError("pool.kind 'actors' needs actors.ActorPool, which this install lacks") from None
        cores = rank_cores(
            int(os.environ.get("LOCAL_RANK", 0)),
            int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
            sorted(os.sched_getaffinity(0)),
        )
        num_actors, batch = actor_layout(config, len(cores))
        return ActorPool(
            env.name,
            num_envs=env.num_envs,
            num_actors=num_actors,
            batch_size=batch,
            seed=seed,
            cores=cores,
            order=pool.order,
            **env.params,
        )
    raise AssertionError(f"learner.schema.PoolConfig allows pool.kind {pool.kind!r}, which make_pool lacks")


def check_remote(config: dict[str, Any]) -> None:
    """Refuses a ``[remote]`` section that cannot run, in one sentence, before the run starts."""
    env, remote = config["env"], {**REMOTE, **config.get("remote", {})}
    hosts, batches = int(remote["hosts"]), int(remote["batches"])
    if hosts <= 0:
        if remote["bind"]:
            raise ValueError("--remote-actors needs --remote-hosts N (how many actor hosts to wait for)")
        return
    remote_bind(remote["bind"], 0)
    if not remote["insecure"] and not remote["keys"]:
        raise ValueError("remote actors need --remote-keys DIR (from `appliance keys new DIR`) or --insecure")
    if remote["keys"]:
        from actors.remote_wire import listed_clients

        listed_clients(remote["keys"])
    if int(env["num_envs"]) % (hosts * batches):
        raise ValueError(f"env.num_envs ({env['num_envs']}) must divide into remote.hosts ({hosts}) x "
                         f"remote.batches ({batches}) batches")


def make_remote_pool(config: dict[str, Any], seed: int) -> Any:
    """``[remote] hosts > 0``: an ``actors.RemotePool`` listening on ``remote.bind`` (+ LOCAL_RANK);
    the hosts step every env (``pool.*`` then only matters to them: each host runs its own actors)."""
    from actors.remote_pool import RemotePool

    env, remote = config["env"], {**REMOTE, **config.get("remote", {})}
    if not remote["bind"]:
        raise ValueError("remote.hosts > 0 needs remote.bind (--remote-actors tcp://*:PORT)")
    if not remote["insecure"] and not remote["keys"]:
        raise ValueError("remote actors need remote.keys (--remote-keys DIR, from `appliance keys new DIR`) "
                         "or --insecure")
    return RemotePool(
        env["name"],
        int(env["num_envs"]),
        int(remote["hosts"]),
        remote_bind(remote["bind"], int(os.environ.get("LOCAL_RANK", 0))),
        seed,
        batches=int(remote["batches"]),
        keys=remote["keys"] or None,
        insecure=bool(remote["insecure"]),
        timeout=float(remote["timeout"]),
        join_timeout=float(remote["join_timeout"]),
        **dict(env.get("params", {})),
    )
