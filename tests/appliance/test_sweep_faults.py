"""Sweep faults caused for real: SIGKILL of the whole sweep then a restart, SIGKILL of one worker, and two
sweep processes sharing one real PostgreSQL server. Afterwards no trial is lost and none is repeated."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sweep_util import (
    check_nothing_lost_or_repeated,
    finish,
    kill_group,
    sqlite_url,
    start,
    study,
    sweep_argv,
    wait_until,
    write_space,
)

pytest.importorskip("optuna")
pytestmark = pytest.mark.timeout(400)


def _running(name: str, url: str) -> list:
    if not Path(url.removeprefix("sqlite:///")).exists() and url.startswith("sqlite"):
        return []
    try:
        return [t for t in study(name, url).get_trials() if t.state.name == "RUNNING" and "worker" in t.user_attrs]
    except Exception:  # the study is not created yet
        return []


def _finished(name: str, url: str) -> int:
    try:
        return sum(t.state.name in ("COMPLETE", "PRUNED") for t in study(name, url).get_trials())
    except Exception:
        return 0


def test_a_sweep_killed_with_sigkill_continues_where_it_stopped(tmp_path) -> None:
    runs, name, trials = tmp_path / "runs", "killed", 4
    space = write_space(tmp_path)
    url = sqlite_url(runs, name)
    log = tmp_path / "sweep.log"
    argv = sweep_argv(space, name, trials, 8192, 1)
    first = start(argv, runs, log)
    try:
        # Kill it mid-trial, after at least one trial finished: the running one must be re-run, not lost.
        wait_until(lambda: _finished(name, url) >= 1 and bool(_running(name, url)) or first.poll() is not None,
                   240, "a finished trial and a running one")
        assert first.poll() is None, log.read_text()[-2000:]
        killed = _running(name, url)[0]
    finally:
        kill_group(first)  # SIGKILL to the coordinator and its workers at once
    assert study(name, url).trials[killed.number].state.name == "RUNNING"  # what a kill leaves behind
    second = start(argv, runs, log)
    assert finish(second, 300, log) == 0, log.read_text()[-3000:]
    trials_after = study(name, url).get_trials()
    check_nothing_lost_or_repeated(trials_after, trials)
    dead = trials_after[killed.number]
    assert dead.state.name == "FAIL" and dead.user_attrs["failure"] == "its worker process died"
    retry = [t for t in trials_after if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retry) == 1 and retry[0].params == killed.params and retry[0].state.name in ("COMPLETE", "PRUNED")


def test_a_worker_killed_with_sigkill_is_replaced_and_its_trial_rerun(tmp_path) -> None:
    runs, name, trials = tmp_path / "runs", "worker-killed", 3
    space = write_space(tmp_path)
    url = sqlite_url(runs, name)
    log = tmp_path / "sweep.log"
    proc = start(sweep_argv(space, name, trials, 8192, 2), runs, log)
    try:
        wait_until(lambda: bool(_running(name, url)) or proc.poll() is not None, 240, "a running trial")
        assert proc.poll() is None, log.read_text()[-2000:]
        victim = _running(name, url)[0]
        os.kill(victim.user_attrs["worker"]["pid"], signal.SIGKILL)  # one worker only; the coordinator lives
        assert finish(proc, 300, log) == 0, log.read_text()[-3000:]
    finally:
        kill_group(proc)
    after = study(name, url).get_trials()
    check_nothing_lost_or_repeated(after, trials)
    assert after[victim.number].state.name == "FAIL"
    assert [t.params for t in after if t.system_attrs.get("failed_trial") == victim.number] == [victim.params]


def test_a_requeued_trial_is_not_reclaimed_before_its_new_worker_records_itself(tmp_path) -> None:
    """A retry starts as a copy of its failed original, dead worker included: reclaim must wait for the
    worker that asked for it to record itself, or the trial is failed and re-queued a second time."""
    import optuna

    from appliance import sweep

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dead = subprocess.Popen(["true"])
    dead.wait()
    storage = sweep.open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")
    study_ = optuna.create_study(study_name="requeue", storage=storage)
    first = study_.ask()
    first.set_user_attr("worker", {"trial": first.number, "host": sweep.host_id(), "pid": dead.pid,
                                   "pid_start": 0.0})
    assert sweep.reclaim(study_) == [first.number]  # its worker is gone: failed, and re-queued once
    retry = study_.ask()  # what a replacement worker gets, before it records itself on the trial
    assert retry.number != first.number and retry.user_attrs["worker"]["pid"] == dead.pid
    assert sweep.reclaim(study_) == []
    assert study_._storage.get_trial(retry._trial_id).state.name == "RUNNING"
    assert sum(t.system_attrs.get("failed_trial") == first.number for t in study_.get_trials()) == 1


# ---- PostgreSQL --------------------------------------------------------------------------------------


def _pg_bin(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), reverse=True):
        return str(candidate)
    return None


@pytest.fixture()
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a unix socket; yields a storage URL for a fresh database."""
    initdb, pg_ctl, createdb = _pg_bin("initdb"), _pg_bin("pg_ctl"), _pg_bin("createdb")
    if not (initdb and pg_ctl and createdb):
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed (Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg2", reason="the PostgreSQL driver (psycopg2-binary) is not installed")
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as its own system user
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser to start PostgreSQL as the postgres user")
        as_user = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="sweep-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if as_user:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = {"capture_output": True, "text": True, "timeout": 120}
    done = subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "-A", "trust"], **run)
    assert done.returncode == 0, done.stderr
    options = f"-k {sock} -p {port} -c listen_addresses='' -c max_connections=50 -c fsync=off"
    done = subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "pg.log"), "-w",
                           "-t", "60", "start"], **run)
    assert done.returncode == 0, done.stderr + (base / "pg.log").read_text()
    try:
        done = subprocess.run([*as_user, createdb, "-h", str(sock), "-p", str(port), "-U", "postgres", "sweeps"],
                              **run)
        assert done.returncode == 0, done.stderr
        yield f"postgresql://postgres@/sweeps?host={sock}&port={port}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], **run)
        shutil.rmtree(base, ignore_errors=True)


def test_asks_on_postgresql_take_the_servers_advisory_lock(tmp_path, postgres) -> None:
    """The lock that keeps two machines from over-asking is the server's, not a file in one machine's dir."""
    import sqlalchemy

    from appliance import sweep

    spec = sweep.Spec(name="locked", env="cartpole", params=[], trials=2, steps=1024, objective="return",
                      pruner="none", overrides=[], storage=postgres, directory=tmp_path)
    storage = sweep.open_storage(postgres)
    sweep.create_study(spec, storage)
    held = sweep.load_study(spec, storage)._storage  # wrapped in Optuna's cache, as every worker holds it
    key = sweep.ask_lock_key(spec.name)
    other = sqlalchemy.create_engine(sweep.driver_url(postgres))
    try:
        with other.connect() as conn:
            def try_lock() -> bool:
                got = bool(conn.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
                if got:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                return got

            with sweep._ask_lock(spec, held):
                assert not try_lock(), "another machine could ask while this one counts"
                assert not (tmp_path / ".ask.lock").exists()
            assert try_lock(), "the lock outlived the ask"
    finally:
        other.dispose()


def test_two_sweep_processes_share_one_postgresql_sweep(tmp_path, postgres) -> None:
    """Two 'machines' (own runs dirs, own processes) join one sweep: distinct numbers, every trial recorded."""
    name, trials = "shared", 4
    space = write_space(tmp_path)
    procs, logs = [], []
    for machine in ("a", "b"):
        log = tmp_path / f"{machine}.log"
        argv = sweep_argv(space, name, trials, 6144, 1, "--storage", postgres)
        procs.append(start(argv, tmp_path / machine, log))
        logs.append(log)
    try:
        for proc, log in zip(procs, logs, strict=True):
            assert finish(proc, 300, log) == 0, log.read_text()[-3000:]
    finally:
        for proc in procs:
            kill_group(proc)
    after = study(name, postgres).get_trials()
    check_nothing_lost_or_repeated(after, trials)  # exactly 4: the server's advisory lock serialises asks
    where = {Path(t.user_attrs["run_dir"]).parent.parent.name for t in after}
    assert where == {"a", "b"}, "both processes should have run trials"
    for t in after:
        run_dir = Path(t.user_attrs["run_dir"])
        other = ({"a", "b"} - {run_dir.parent.parent.name}).pop()
        assert not (tmp_path / other / run_dir.parent.name / run_dir.name).exists()  # each trial ran once
