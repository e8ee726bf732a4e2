"""`appliance sweep`: many trainings of one env on Optuna, resumable, shared across machines.

One *sweep* is one Optuna study in an RDB storage (SQLite in the sweep's
directory by default, a PostgreSQL URL for workers on several machines). This
process is the *coordinator*: it checks the input, opens or creates the study,
then starts ``--workers`` worker processes, each pinned to its own share of the
cores, and shows progress and serves metrics until they finish. A worker asks
the study for a trial, trains it as an ordinary run in
``runs/sweep-NAME/trial-NNNN/`` and tells the study how it ended.

No trial is lost: a worker records its host and pid on the trial and a
heartbeat while it trains. The coordinator fails a trial whose worker process
died on this host at once (and starts a replacement worker); Optuna's
heartbeat check fails one whose worker on another machine went silent. Either
way the trial is re-queued with the same parameters (Optuna's
``RetryHeartbeatStaleTrialCallback``), so a restarted sweep continues where it
stopped. Trial numbers come from the storage, so no two trials share one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import sweep_space
from .train import RUNS_DIR_ENV

OBJECTIVES = ("return", "return-per-second")
PRUNERS = ("median", "hyperband", "none")
REPORTS = 20  # intermediate values per trial: the pruner compares trials at the same fractions of --steps
HEARTBEAT_S = 5
GRACE_S = 30  # a trial silent this long on another machine is failed and re-queued
MAX_CONSECUTIVE_FAILURES = 3  # a worker whose trials keep raising stops (a broken env, not a bad sample)
EXIT_FAILING = 3
SCHEMA_LOCK = zlib.crc32(b"appliance-sweep:schema")  # a PostgreSQL advisory lock key
STOP_GRACE_S = 60  # after Ctrl-C or SIGTERM, workers get this long to finish their update and checkpoint


def _need_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ValueError('appliance sweep needs the [sweep] extra (optuna is not installed): '
                         'pip install -e ".[sweep]"') from None
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Our workers use ask/tell with their own heartbeat thread (_Heartbeat), which Optuna cannot see.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def sweep_dir(name: str) -> Path:
    return Path(os.environ.get(RUNS_DIR_ENV) or "runs") / f"sweep-{name}"


def default_storage(name: str) -> str:
    return f"sqlite:///{(sweep_dir(name) / 'sweep.db').resolve()}"


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("://")
    if sep and "@" in tail:
        creds, host = tail.rsplit("@", 1)
        return f"{head}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url


def open_storage(url: str) -> Any:
    """Optuna's RDB storage at ``url`` with heartbeats and re-queueing of dead trials; one sentence if it fails."""
    optuna = _need_optuna()
    engine: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine = {"connect_args": {"timeout": 60}}  # several workers write to one file
    elif url.startswith("postgresql"):
        engine = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
        url = driver_url(url)
    try:
        with _schema_lock(url, engine):
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
            )
    except Exception as exc:  # sqlalchemy's errors, a missing driver, a malformed URL
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot open sweep storage {redact(url)}: {detail}") from None


@contextlib.contextmanager
def _schema_lock(url: str, engine_kwargs: dict[str, Any]) -> Iterator[None]:
    """One process at a time opens the storage: two creating Optuna's tables at once collide.

    On PostgreSQL under the server's advisory lock; on an SQLite file under a file lock beside it.
    """
    if url.startswith("sqlite"):
        import sqlalchemy

        database = sqlalchemy.engine.make_url(url).database
        db = Path(database).resolve() if database and database != ":memory:" else None
        if db is None or not db.parent.is_dir():  # nothing to share, or SQLite's own error follows
            yield
            return
        with open(db.with_name(f".{db.name}.schema.lock"), "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK})
    finally:
        engine.dispose()


def driver_url(url: str) -> str:
    """A bare ``postgresql://`` means psycopg 3 to SQLAlchemy 2.1; use psycopg2 when only it is installed."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


@dataclass
class Spec:
    """Everything a worker needs to run this sweep's trials (picklable, sent to spawned workers)."""

    name: str
    env: str
    params: list[sweep_space.Param]
    trials: int
    steps: int
    objective: str
    pruner: str
    overrides: list[str]
    storage: str
    directory: Path
    workers: int = 1
    cores: list[list[int]] = field(default_factory=list)

    def identity(self) -> dict[str, Any]:
        """What must match for a restart (or another machine) to join this sweep."""
        return {"env": self.env, "objective": self.objective, "steps": self.steps,
                "space": [p.describe() for p in self.params], "overrides": sorted(self.overrides)}

    def directions(self) -> list[str]:
        return ["maximize"] if self.objective == "return" else ["maximize", "minimize"]


def host_id() -> str:
    """This machine: hostname plus boot id, so a pid recorded here is only checked here."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        boot = "?"
    return f"{socket.gethostname()}/{boot}"


def prepare(
    env: str, space: str, trials: int, steps: int | None, workers: int, storage: str | None,
    objective: str, pruner: str | None, name: str | None, overrides: list[str],
) -> Spec:
    """Checks everything (space, config, storage, the study it holds) before anything is written."""
    from . import train

    _need_optuna()
    if objective not in OBJECTIVES:
        raise ValueError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if pruner is not None and pruner not in PRUNERS:
        raise ValueError(f"--pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    if objective != "return" and pruner not in (None, "none"):
        raise ValueError(f"--pruner {pruner}: Optuna prunes single-objective studies only, "
                         "and --objective return-per-second has two (return, wall time)")
    pruner = pruner or ("median" if objective == "return" else "none")
    params = sweep_space.load(space)
    config, _ = train.resolve(env, overrides, None, False, {})  # a bad env or --set fails here
    pinned = {o.split("=", 1)[0].strip() for o in overrides}
    sweep_space.check(params, config, pinned)
    steps = steps or int(config["train"]["total_steps"])
    name = name or f"{env.replace('/', '-').replace(':', '-')}-{Path(space).stem}"
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"--name {name!r}: use letters, digits, '-', '_' and '.' only")
    directory = sweep_dir(name)
    url = storage or default_storage(name)
    spec = Spec(name, env, params, trials, steps, objective, pruner, list(overrides), url, directory, workers)
    if storage is not None or (directory / "sweep.db").exists():  # else there is nothing to conflict with yet
        check_study(spec, open_storage(url))
    return spec


def check_study(spec: Spec, storage: Any) -> None:
    """Refuses a storage whose study of this name is another sweep (another env, space, budget...)."""
    optuna = _need_optuna()
    try:
        summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    except Exception as exc:
        raise ValueError(f"cannot read sweep storage {redact(spec.storage)}: {str(exc).splitlines()[0]}") from None
    found = [s for s in summaries if s.study_name == spec.name]
    if not found:
        return
    held = found[0].user_attrs.get("appliance")
    where = f"sweep '{spec.name}' in {redact(spec.storage)}"
    if held is None:
        raise ValueError(f"{where} is an Optuna study the appliance did not create; pass another --name")
    mine = spec.identity()
    if held["env"] != mine["env"]:
        raise ValueError(f"{where} sweeps env {held['env']}, not {mine['env']}; pass another --name "
                         "(nothing was changed)")
    for key in ("objective", "steps", "space", "overrides"):
        if held.get(key) != mine[key]:
            raise ValueError(f"{where} was started with another {key} ({json.dumps(held.get(key))}); pass the "
                             f"same one to continue it, or another --name (nothing was changed)")


def create_study(spec: Spec, storage: Any) -> Any:
    optuna = _need_optuna()
    study = optuna.create_study(study_name=spec.name, storage=storage, directions=spec.directions(),
                                load_if_exists=True)
    if "appliance" not in study.user_attrs:
        study.set_user_attr("appliance", spec.identity())
    return study


def load_study(spec: Spec, storage: Any | None = None) -> Any:
    optuna = _need_optuna()
    storage = storage if storage is not None else open_storage(spec.storage)
    sampler = optuna.samplers.TPESampler(
        n_startup_trials=max(2, min(10, spec.trials // 3)), constant_liar=True, multivariate=True
    )
    return optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=make_pruner(spec))


def make_pruner(spec: Spec) -> Any:
    optuna = _need_optuna()
    if spec.pruner == "median":  # the first 20% of every trial is never judged
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=REPORTS // 5)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=2, max_resource=REPORTS, reduction_factor=3)
    return optuna.pruners.NopPruner()


def split_cores(workers: int, allowed: list[int] | None = None) -> list[list[int]]:
    """Each worker's cores: contiguous shares of this process's affinity; shared round-robin if too few."""
    allowed = sorted(os.sched_getaffinity(0)) if allowed is None else allowed
    if workers >= len(allowed):
        return [[allowed[i % len(allowed)]] for i in range(workers)]
    share = len(allowed) // workers
    out = [allowed[i * share:(i + 1) * share] for i in range(workers)]
    out[-1] = allowed[(workers - 1) * share:]  # the remainder goes to the last worker
    return out


# ---- trials ----------------------------------------------------------------------------------------


def _finished_states() -> tuple[Any, ...]:
    optuna = _need_optuna()
    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def counts(study: Any) -> dict[str, int]:
    """Trials per state name (complete, pruned, fail, running, waiting)."""
    out = {"complete": 0, "pruned": 0, "fail": 0, "running": 0, "waiting": 0}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name.lower()] = out.get(t.state.name.lower(), 0) + 1
    return out


def ask_lock_key(name: str) -> int:
    """The PostgreSQL advisory lock key the workers of sweep ``name`` count and ask under."""
    return zlib.crc32(f"appliance-sweep:{name}".encode())


@contextlib.contextmanager
def _ask_lock(spec: Spec, storage: Any) -> Iterator[None]:
    """Workers count and ask one at a time, so a sweep never starts more than --trials trials.

    On PostgreSQL the lock is the server's advisory lock (every machine's workers
    take turns); on SQLite a file lock beside the database, so sweeps started from
    other run dirs on one file take turns too; otherwise one in the sweep's directory.
    """
    # A study holds its RDBStorage wrapped in Optuna's cache, which has no engine of its own.
    engine = getattr(getattr(storage, "_backend", storage), "engine", None)
    if engine is not None and engine.dialect.name == "postgresql":
        from sqlalchemy import text

        key = ask_lock_key(spec.name)
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        return
    lock = spec.directory / ".ask.lock"
    database = engine.url.database if engine is not None and engine.dialect.name == "sqlite" else None
    if database and database != ":memory:":
        db = Path(database).resolve()
        lock = db.with_name(f".{db.name}.ask.lock")
    with open(lock, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def next_trial(study: Any, spec: Spec) -> Any | None:
    """A new (or re-queued) trial with this process recorded on it, or None when the sweep has enough."""
    optuna = _need_optuna()
    states = (*_finished_states(), optuna.trial.TrialState.RUNNING)
    with _ask_lock(spec, study._storage):
        if len(study.get_trials(deepcopy=False, states=states)) >= spec.trials:
            return None
        trial = study.ask()
        pid = os.getpid()
        trial.set_user_attr("worker", {"trial": trial.number, "host": host_id(), "pid": pid,
                                       "pid_start": _process_start(pid),
                                       "cores": sorted(os.sched_getaffinity(0))})
        study._storage.record_heartbeat(trial._trial_id)
    return trial


def _alive(worker: dict[str, Any]) -> bool:
    started = _process_start(int(worker["pid"]))
    return started is not None and abs(started - float(worker.get("pid_start") or 0.0)) < 0.5


def reclaim(study: Any) -> list[int]:
    """Fails and re-queues trials whose worker died: on this host at once, elsewhere after the heartbeat grace.

    Returns the numbers this call re-queued. Safe to run from several processes:
    the storage lets only one of them fail a given trial.
    """
    optuna = _need_optuna()
    storage = study._storage
    me, requeued = host_id(), []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker") or {}
        if worker.get("trial", t.number) != t.number:
            # A re-queued trial carries its failed original's attributes, dead worker included, from
            # the moment a worker asks for it until that worker records itself: not a death of its own,
            # unless the worker never got to record itself within the heartbeat grace.
            begun = t.datetime_start.timestamp() if t.datetime_start is not None else time.time()
            if time.time() - begun < GRACE_S:
                continue
        elif worker.get("host") != me or worker.get("pid") is None or _alive(worker):
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, "failure", "its worker process died")
            if not storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process got there first
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, storage.get_trial(t._trial_id))
        requeued.append(t.number)
    optuna.storages.fail_stale_trials(study)
    return requeued


class _Heartbeat:
    """Records the trial's heartbeat every HEARTBEAT_S seconds from a daemon thread."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(storage, trial_id), daemon=True)
        self._thread.start()

    def _run(self, storage: Any, trial_id: int) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):  # a missed beat is retried; the grace period covers several
                storage.record_heartbeat(trial_id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(HEARTBEAT_S + 5)


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Sends this process's stdout and stderr (file descriptors included) to ``path`` for one trial."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


def trial_config(spec: Spec, values: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The trial's resolved config: the env's, then --set, then the sampled values, then the sweep's budget."""
    from . import train

    extra: dict[str, Any] = {**values, "train.total_steps": spec.steps}
    if len(spec.cores) > 1 and "train.torch_threads" not in values and not any(
        o.split("=", 1)[0].strip() == "train.torch_threads" for o in spec.overrides
    ):
        extra["train.torch_threads"] = len(os.sched_getaffinity(0))  # this worker's own cores, no more
    config, _ = train.resolve(spec.env, spec.overrides, str(run_dir), False, extra, restart=True)
    return config


def run_trial(study: Any, trial: Any, spec: Spec) -> str:
    """Trains one trial and tells the study; returns the state it was told (COMPLETE, PRUNED, FAIL)."""
    optuna = _need_optuna()
    from learner.train import train

    TrialState = optuna.trial.TrialState
    started = time.time()
    run_dir = (spec.directory / f"trial-{trial.number:04d}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    trial.set_user_attr("run_dir", str(run_dir))
    for stale in ("failure", "mean_return", "outcome"):  # a retry starts with its failed original's attrs
        if trial.user_attrs.get(stale) is not None:
            trial.set_user_attr(stale, None)
    retry_of = study._storage.get_trial(trial._trial_id).system_attrs.get("failed_trial")
    beat = _Heartbeat(study._storage, trial._trial_id)
    prune = spec.objective == "return" and spec.pruner != "none"
    seen: dict[str, Any] = {"step": 0, "first_step_s": None}

    def on_update(info: dict[str, float]) -> bool:
        if seen["first_step_s"] is None:  # the loop began (envs reset, first step) `elapsed` s before now
            seen["first_step_s"] = time.time() - info["elapsed"] - started
        step = min(REPORTS, int(info["agent_steps"] * REPORTS // spec.steps))
        mean = info["mean_return"]
        if step <= seen["step"] or math.isnan(mean):
            return False
        seen["step"] = step
        if spec.objective != "return":
            return False  # Optuna keeps no intermediate values for multi-objective studies
        trial.report(mean, step)
        return prune and trial.should_prune()

    summary: dict[str, Any] | None = None
    try:
        values = {p.key: p.suggest(trial) for p in spec.params}
        with _output_to(run_dir / "train.log"):
            if retry_of is not None:
                print(f"trial {trial.number}: a retry of trial {retry_of}, whose worker died", flush=True)
            config = trial_config(spec, values, run_dir)
            summary = train(config, run_dir, live=False, on_update=on_update)
    except Exception as exc:
        with _output_to(run_dir / "train.log"):
            traceback.print_exc()
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        trial.set_user_attr("failure", message)
        trial.set_user_attr("wall_seconds", time.time() - started)
        beat.stop()
        study.tell(trial, state=TrialState.FAIL)
        return "ERROR"
    wall = time.time() - started
    outcome = summary["outcome"]
    for key, value in (("wall_seconds", wall), ("first_step_seconds", seen["first_step_s"]),
                       ("mean_return", summary["mean_return"]), ("outcome", outcome),
                       ("agent_steps", summary["agent_steps"]), ("steps_per_second", summary["steps_per_second"])):
        trial.set_user_attr(key, value)
    beat.stop()
    if outcome == "stopped":  # a signal, not the trial's fault: run it again at the next start
        trial.set_user_attr("failure", f"stopped by {summary.get('stop_signal') or 'a signal'}")
        study.tell(trial, state=TrialState.FAIL)
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, study._storage.get_trial(trial._trial_id))
        return "STOPPED"
    if outcome == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
        return "PRUNED"
    if summary["mean_return"] is None:
        trial.set_user_attr("failure", "no episode finished within --steps")
        study.tell(trial, state=TrialState.FAIL)
        return "FAIL"
    value = float(summary["mean_return"])
    study.tell(trial, [value] if spec.objective == "return" else [value, wall])
    return "COMPLETE"


def _warm_up(spec: Spec) -> None:
    """One update of the base config in a scratch dir, before any trial's clock starts.

    The first training in a process pays for imports and first calls (torch's
    kernels, the optimizer, the env's module, the sampler's); a worker pays them
    here once, so every trial starts training within a second of being asked.
    """
    import tempfile

    import optuna.samplers  # noqa: F401

    from learner.train import train

    from . import train as launch

    with tempfile.TemporaryDirectory(prefix="sweep-warmup-") as scratch, \
            contextlib.suppress(Exception), _output_to(Path(scratch) / "train.log"):
        config, _ = launch.resolve(spec.env, spec.overrides, scratch, False, {"train.total_steps": 1,
                                                                             "train.checkpoint_every": 0})
        train(config, Path(scratch), live=False)  # a real problem shows in the first trial, with its traceback


def worker_main(spec: Spec, index: int) -> None:
    """One worker process: pinned to its cores, it runs trials until the sweep has enough."""
    cores = spec.cores[index % len(spec.cores)] if spec.cores else sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, cores)
    if os.environ.get("CUDA_VISIBLE_DEVICES") is None:
        with contextlib.suppress(Exception):
            import torch

            if torch.cuda.is_available() and torch.cuda.device_count() > 1:
                os.environ["CUDA_VISIBLE_DEVICES"] = str(index % torch.cuda.device_count())
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.append(signum))
    _warm_up(spec)
    study = load_study(spec)
    failures = 0
    while not stopping:
        trial = next_trial(study, spec)
        if trial is None:
            return
        state = run_trial(study, trial, spec)
        if state == "STOPPED":
            return
        failures = failures + 1 if state == "ERROR" else 0
        if failures >= MAX_CONSECUTIVE_FAILURES:
            sys.exit(EXIT_FAILING)


# ---- the coordinator -------------------------------------------------------------------------------

# A worker is a fresh interpreter with the caller's sys.path, handed its spec on stdin. Not
# multiprocessing's spawn, which first re-runs the caller's __main__: a script without a main
# guard would start the sweep again inside every worker, and each would die before its first trial.
_WORKER = ("import json, pickle, sys; sys.path[:] = json.loads(sys.argv[1]); "
           "from appliance.sweep import worker_main; worker_main(*pickle.load(sys.stdin.buffer))")


def _start_worker(spec: Spec, index: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, json.dumps(sys.path)], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    with proc.stdin:
        proc.stdin.write(pickle.dumps((spec, index)))
    return proc


def best(study: Any) -> tuple[int, float] | None:
    """(trial number, mean return) of the best complete trial so far, or None."""
    optuna = _need_optuna()
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        return None
    top = max(done, key=lambda t: float(t.values[0]))
    return top.number, float(top.values[0])


def _log_finished(study: Any, announced: set[int], console: Any) -> None:
    for t in study.get_trials(deepcopy=False):
        if t.number in announced or not t.state.is_finished():
            continue
        announced.add(t.number)
        ret = t.user_attrs.get("mean_return")
        failure = t.user_attrs.get("failure")
        how = failure if t.state.name == "FAIL" and failure else f"mean return {ret:.1f}" if ret is not None \
            else "no return"
        wall = t.user_attrs.get("wall_seconds")
        console.print(f"trial {t.number} {t.state.name.lower()}: {how}" + (f" in {wall:.1f} s" if wall else ""),
                      highlight=False)


def run(spec: Spec, console: Any, metrics_port: int = 0, metrics_addr: str = "127.0.0.1",
        progress: bool = True) -> dict[str, Any]:
    """Runs the sweep to ``spec.trials`` finished trials; returns the final counts and best trial."""

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from monitoring.sweep import SweepMetrics

    if metrics_port:
        from monitoring.exporter import check_port_free

        check_port_free(metrics_addr, metrics_port)
    spec.directory.mkdir(parents=True, exist_ok=True)
    storage = open_storage(spec.storage)
    check_study(spec, storage)  # again: another machine may have created it since prepare()
    create_study(spec, storage)
    study = load_study(spec, storage)
    reclaim(study)  # what a killed earlier start left running here is re-queued before anything new
    spec.cores = split_cores(spec.workers)
    workers: dict[int, subprocess.Popen[bytes]] = {}

    def start(index: int) -> None:
        workers[index] = _start_worker(spec, index)

    stopping: list[str] = []

    def on_signal(signum: int, frame: Any) -> None:
        if not stopping:
            stopping.append(signal.Signals(signum).name)
            for proc in workers.values():
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGTERM)  # each finishes its update, checkpoints, re-queues

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    replaced, failing = 0, None
    announced: set[int] = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    with SweepMetrics(metrics_port, metrics_addr, sweep=spec.name, env=spec.env) as exporter:
        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=console, disable=not progress, transient=False)
        with bar:
            task = bar.add_task(f"sweep {spec.name}", total=spec.trials)
            for i in range(spec.workers):
                start(i)
            stop_deadline: float | None = None
            while workers:
                time.sleep(1.0)
                if stopping and stop_deadline is None:
                    stop_deadline = time.monotonic() + STOP_GRACE_S
                if stop_deadline is not None and time.monotonic() > stop_deadline:
                    for proc in workers.values():  # a worker that did not stop in time; its trial is re-queued
                        if proc.poll() is None:
                            proc.kill()
                    for proc in workers.values():
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            proc.wait(10)
                    workers.clear()
                    reclaim(study)
                    break
                for index, proc in list(workers.items()):
                    if proc.poll() is None:
                        continue
                    del workers[index]
                    if proc.returncode == EXIT_FAILING:
                        failing = f"worker {index}'s trials failed {MAX_CONSECUTIVE_FAILURES} times in a row"
                    elif proc.returncode != 0 and not stopping and replaced < 4 * spec.workers:
                        replaced += 1
                        reclaim(study)
                        start(index)  # a dead worker is replaced; its trial was re-queued above
                    elif proc.returncode != 0 and not stopping:
                        failing = f"worker {index} kept dying (exit code {proc.returncode}, {replaced} replaced)"
                if not stopping:
                    reclaim(study)
                seen = counts(study)
                top = best(study)
                exporter.update(seen, spec.trials, top[1] if top else None)
                if not console.is_terminal and progress:  # a log gets one line per finished trial instead
                    _log_finished(study, announced, console)
                note = f", best {top[1]:.1f} (trial {top[0]})" if top else ""
                bar.update(task, completed=min(spec.trials, seen["complete"] + seen["pruned"]),
                           description=f"sweep {spec.name}: {seen['running']} running, {seen['pruned']} pruned"
                                       f"{note}")
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    seen = counts(study)
    top = best(study)
    return {"counts": seen, "best": top, "stopped": stopping[0] if stopping else None, "failing": failing,
            "replaced_workers": replaced}
