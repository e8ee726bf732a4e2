"""Launching training: resolve the config and run dir, then run one learner rank per GPU (or N on CPU).

Under torchrun (``RANK`` and ``WORLD_SIZE`` already set) this process is one
rank and spawns nothing; otherwise it spawns the ranks itself with the same
environment variables torchrun would set.

Before anything is written, :func:`preflight` runs the doctor's checks for this
machine's ranks (once per machine) and refuses a run that cannot work. Each
rank serves its metrics on base port + LOCAL_RANK; SIGTERM or SIGINT to the
launcher is forwarded to the ranks, which stop at the same update, checkpoint
and close their actors.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

from actors import forkserver
from learner import checkpoint
from learner import config as configs

from . import doctor

RUNS_DIR_ENV = "APPLIANCE_RUNS_DIR"
# When one spawned rank fails, the others get this long to end on their own before torch's join
# sends them SIGTERM: a refusal (the same config error in every rank) then reaches each rank's own
# exit instead of a SIGTERM that rank 0 would answer with "stopping after this update".
RANK_GRACE_S = 5.0


def default_env() -> str:
    """The env `appliance train` trains without ``--env`` (``env.name``'s default in the schema)."""
    from learner.schema import EnvConfig

    return EnvConfig.name


def should_resume(run_dir: str | None, resume: bool, resume_if_present: bool) -> bool:
    """``--resume`` must continue a run; ``--resume-if-present`` continues one only if it has a checkpoint.

    The second is what a restartable launcher (torchrun with ``--max-restarts``,
    a Kubernetes pod) passes: the first start trains fresh, every restart picks
    up the run dir's latest checkpoint.
    """
    if resume and resume_if_present:
        raise ValueError("pass --resume or --resume-if-present, not both")
    if resume_if_present:
        if not run_dir:
            raise ValueError("--resume-if-present needs --run-dir (where a checkpoint may be)")
        return bool(checkpoint.list_checkpoints(Path(run_dir)))
    return resume


def resolve(
    env: str | None, overrides: list[str], run_dir: str | None, resume: bool, extra: dict[str, Any],
    preview: bool = False, restart: bool = False,
) -> tuple[dict[str, Any], Path]:
    """The resolved config and the run directory; refuses to overwrite a run unless resuming.

    ``preview`` (`appliance config`): a device named outright (cpu, cuda) shapes the config
    whether or not this machine has it, so a CPU machine can show a GPU run's config.
    ``restart``: a fresh start may reuse a run dir that holds a run's files but no checkpoint
    (``--resume-if-present`` after a crash before the first checkpoint; a sweep's own trial
    dirs); without it such a dir, or a folder holding a ``config.toml`` of its own, is refused.
    """

    if run_dir and Path(run_dir).exists() and not Path(run_dir).is_dir():
        raise ValueError(f"--run-dir {run_dir} is not a directory")
    if resume:
        if not run_dir:
            raise ValueError("--resume needs --run-dir (the run to continue)")
        path = Path(run_dir)
        if not checkpoint.list_checkpoints(path):
            raise ValueError(
                f"--resume: run dir {path} holds no checkpoint (use --resume-if-present to start fresh then)"
            )
        _, state = checkpoint.load_latest(path)
        config = configs.complete(state["config"])  # a run written before a key existed gets its default
        if env is not None and env != config["env"]["name"]:
            raise ValueError(f"--env {env} differs from the run's env {config['env']['name']}")
    else:
        if env is not None and not env.strip():
            raise ValueError("--env is empty: name an env (`appliance envs` lists them), or leave --env out for "
                             f"{default_env()}")
        env = env or default_env()
        # Shipped TOML, else a generic config from the env's spaces (Gymnasium ids, PettingZoo,
        # atari/ ROMs); an env that cannot be made is a ValueError from configs.load.
        config = configs.load(env)
        label = env.replace("/", "-").replace(":", "-")
        parent = Path(os.environ.get(RUNS_DIR_ENV) or "runs")
        path = Path(run_dir) if run_dir else parent / f"{label}-{time.strftime('%Y%m%d-%H%M%S')}"
        if checkpoint.list_checkpoints(path):
            raise ValueError(
                f"run dir {path} already holds checkpoints; pass --resume (or --resume-if-present) "
                "to continue it, or another --run-dir"
            )
        held = [name for name in checkpoint.RUN_FILES if (path / name).exists()]
        if held and not restart:
            raise ValueError(
                f"run dir {path} already holds {', '.join(held)} (a run that wrote no checkpoint, or files "
                "not ours): pass another --run-dir, or --resume-if-present to start over in it"
            )
    from learner.pools import with_remote

    config = configs.apply_overrides(with_remote(config), overrides)
    for key, value in extra.items():
        if value is not None:
            configs.set_value(config, key, value)
    pinned = {o.split("=", 1)[0].strip() for o in overrides} | {k for k, v in extra.items() if v is not None}
    if not resume:  # a resumed run's config already went through this
        from learner.train import resolve_device

        device = config["train"]["device"]
        kind = device if preview and device in ("cpu", "cuda") else resolve_device(device).type
        config = configs.for_device(config, kind, pinned)
    configs.validate(config, pinned)  # the whole config, before anything is created or printed
    from learner.pools import check_remote

    check_remote(config)
    return config, path


def finished(run_dir: Path, config: dict[str, Any]) -> str | None:
    """Why resuming ``run_dir`` with ``config`` would train nothing (it is finished), else None.

    Finished: its newest checkpoint already holds ``train.total_steps`` (as many
    whole updates as fit), or the run reached its ``--target-return`` and the
    target is unchanged. The sentence says how to extend it.
    """
    _, state = checkpoint.load_latest(Path(run_dir))
    updates, steps = int(state["updates"]), int(state["agent_steps"])
    if updates < 1:
        return None
    per_update = steps // updates
    total = config["train"]["total_steps"]
    target = config["train"]["target_return"]
    reached = state.get("outcome") == "target_reached"
    was = configs.complete(state["config"])["train"]["target_return"]
    if max(1, total // per_update) > updates and not (reached and target and target <= was):
        return None
    if reached and target and target <= was:
        why = f"it reached --target-return {was:g}"
        how = (f"pass --resume --target-return 0 (off) or one above {was:g}, and --total-steps N of at least "
               f"{steps + per_update:,} (one more update) if its {total:,} are not enough")
    else:
        why = f"it trained its {steps:,} of {total:,} agent steps"
        # Budgets round down to whole updates: name the smallest one that trains another.
        how = f"pass --resume --total-steps N with N at least {steps + per_update:,} (one more update)"
    return f"run {run_dir} is finished: {why}, at update {updates}; nothing was changed. To train it further, {how}."


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (rendezvous, benchmarks)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def local_ranks(config: dict[str, Any], ranks: int | None) -> int:
    """How many learner ranks this machine runs: torchrun's LOCAL_WORLD_SIZE, one per GPU, else ``ranks``."""
    from learner.train import resolve_device

    if _torchrun():
        return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
    device = resolve_device(config["train"]["device"])
    if device.type == "cuda":
        if ranks is not None and ranks != torch.cuda.device_count():
            raise ValueError(
                f"--ranks {ranks}: on CUDA there is one rank per GPU ({torch.cuda.device_count()})"
            )
        return torch.cuda.device_count()
    cores = len(os.sched_getaffinity(0))
    if ranks is not None and ranks > cores:
        raise ValueError(f"--ranks {ranks} is more than the {cores} cores this process may use: each CPU rank "
                         f"needs a core of its own (--ranks {cores} at most)")
    return ranks or 1


def checks(
    config: dict[str, Any], ranks: int, metrics_port: int, metrics_addr: str
) -> list[doctor.Check]:
    """The doctor's checks for ``ranks`` local ranks of this config (what `appliance doctor` shows)."""
    env, pool = config["env"], config["pool"]
    actors = pool["kind"] == "actors"
    return doctor.run(
        env=env["name"],
        num_envs=env["num_envs"],
        params=dict(env["params"]),
        ranks=ranks,
        actors_per_rank=pool["num_actors"] if actors else 0,
        metrics_addr=metrics_addr,
        metrics_port=metrics_port,
        arena=actors,
    )


def preflight(config: dict[str, Any], ranks: int | None, metrics_port: int, metrics_addr: str) -> int:
    """Refuses a run that cannot work, before anything is written; returns the local rank count.

    Run once per machine: by the launcher, or under torchrun by LOCAL_RANK 0
    (each torchrun rank still checks its own metrics port, as only it knows it).
    Raises ValueError (or the port's OSError) with one sentence.
    """
    world = local_ranks(config, ranks)
    if _torchrun():
        local_rank = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
        if metrics_port:
            from monitoring.exporter import check_port_free

            check_port_free(metrics_addr, metrics_port + local_rank)
        if local_rank != 0:
            return world
        metrics_port = 0  # the other local ranks' ports are theirs to check
    failed = doctor.blocking(checks(config, world, metrics_port, metrics_addr))
    if failed:
        raise ValueError(failed[0].detail)
    return world


def make_exporter(config: dict[str, Any], run_dir: Path, metrics_port: int, metrics_addr: str) -> Any:
    """This rank's MetricsExporter (port 0: a silent one), labelled rank/env/run, GPU readings for its device."""
    from learner.train import resolve_device
    from monitoring import MetricsExporter

    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    device = resolve_device(config["train"]["device"], local_rank)
    return MetricsExporter(
        metrics_port,
        metrics_addr,
        rank=rank,
        local_rank=local_rank,
        env=config["env"]["name"],
        run=Path(run_dir).resolve().name,
        gpus=None if device.type == "cuda" else (),
    )


def _train_rank(
    config: dict[str, Any], run_dir: Path, resume: bool, metrics_port: int, metrics_addr: str
) -> dict[str, Any]:
    from learner.train import train

    with make_exporter(config, run_dir, metrics_port, metrics_addr) as metrics:
        return train(config, run_dir, resume=resume, metrics=metrics)


def _rank_main(
    local_rank: int,
    world: int,
    port: int,
    config: dict[str, Any],
    run_dir: Path,
    resume: bool,
    metrics_port: int,
    metrics_addr: str,
    notes: Path,
) -> None:
    """One spawned rank. It starts with SIGINT and SIGTERM ignored (see :func:`_spawn_ranks`), so a
    Ctrl-C while it imports is no traceback; a refusal goes to ``notes`` for the launcher to print."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if (notes / "stop").exists():  # the launcher was signalled while this rank ignored it
        return
    os.environ.update(
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    faulthandler.enable()  # a rank killed by a fatal signal prints where it was, in the launcher's stderr
    from learner.train import exit_process

    # Every end but a bug's (torch's spawn wrapper reports that one) skips the interpreter's
    # teardown, which torch's gloo threads can abort (see exit_process).
    code = 0
    try:
        _train_rank(config, run_dir, resume, metrics_port, metrics_addr)
    except (ValueError, OSError) as e:  # the sentences appliance.cli prints for one rank
        (notes / f"error-{local_rank}").write_text(str(e) or type(e).__name__)
        code = 2
    except KeyboardInterrupt:  # ends the rank quietly: the launcher decides
        pass
    exit_process(code)


def launch(
    config: dict[str, Any],
    run_dir: Path,
    resume: bool,
    ranks: int | None,
    metrics_port: int = 0,
    metrics_addr: str = "127.0.0.1",
    world: int | None = None,
) -> dict[str, Any] | None:
    """Runs training; returns rank 0's summary (read back from the run dir when ranks were spawned).

    ``world``: the local rank count :func:`preflight` returned (computed here when None).
    """
    if _torchrun():  # torchrun: be that rank
        return _train_rank(config, run_dir, resume, metrics_port, metrics_addr)
    world = world or local_ranks(config, ranks)
    if world == 1:
        return _train_rank(config, run_dir, resume, metrics_port, metrics_addr)
    made = checkpoint.missing_top(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _spawn_ranks(config, run_dir, resume, world, metrics_port, metrics_addr)
    except BaseException:
        checkpoint.remove_if_empty(run_dir, made)  # a run refused before it wrote anything leaves no directory
        raise


def _spawn_ranks(config: dict[str, Any], run_dir: Path, resume: bool, world: int, metrics_port: int,
                 metrics_addr: str) -> dict[str, Any]:
    """Spawns ``world`` local ranks, forwards SIGINT and SIGTERM to them, returns rank 0's summary.

    A rank's refusal (a ValueError or OSError) is raised here as one ValueError, the lowest
    rank's; a signal that stops the ranks before this launch wrote a summary, as KeyboardInterrupt.
    """
    started = time.time()
    notes = Path(tempfile.mkdtemp(prefix="appliance-ranks-"))
    received: list[str] = []
    # Its "terminating process N" warning when one rank fails: the failure itself is what we report.
    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)
    try:
        # Ignored while spawning, so the children start ignoring them (an ignored signal stays so
        # across exec) until _rank_main installs its handlers; the window here is short.
        ignored = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            with forkserver.main_module_hidden():  # a rank needs nothing of it: the config is plain data
                context = mp.start_processes(
                    _rank_main,
                    args=(world, free_port(), config, run_dir, resume, metrics_port, metrics_addr, notes),
                    nprocs=world,
                    start_method="spawn",
                    join=False,
                )
        finally:
            for sig, handler in ignored.items():
                signal.signal(sig, handler)

        def forward(signum: int, frame: Any) -> None:
            received.append(signal.Signals(signum).name)
            (notes / "stop").touch()  # first: a rank that still ignores signals finds it when it starts
            for proc in context.processes:
                if proc.is_alive():
                    os.kill(proc.pid, signum)  # each rank stops at the same update and checkpoints

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not context.join(timeout=1.0, grace_period=RANK_GRACE_S):
                pass
        except mp.ProcessExitedException:
            errors = sorted(notes.glob("error-*"), key=lambda p: int(p.name.split("-")[1]))
            if errors:
                raise ValueError(errors[0].read_text()) from None
            if received:  # a rank killed while it could not stop cleanly (torch's join then ends the rest)
                raise KeyboardInterrupt from None
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        shutil.rmtree(notes, ignore_errors=True)
    written = run_dir / "summary.json"
    if received and (not written.exists() or written.stat().st_mtime < started):
        raise KeyboardInterrupt  # stopped before the first update: nothing to report (a resumed run's is older)
    summary = json.loads(written.read_text())
    if received:  # what the launcher got decides the exit code (a rank may have seen only the forward)
        summary["stop_signal"] = received[0]
    return summary
