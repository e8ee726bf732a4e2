"""`appliance sweep` on real Optuna and real CartPole training: trials are ordinary runs, pruning, report, bad input."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import tomllib
from sweep_util import (
    ROOT,
    check_nothing_lost_or_repeated,
    environ,
    finish,
    sqlite_url,
    start,
    study,
    sweep_argv,
    write_space,
)

from appliance import sweep, sweep_space
from appliance.cli import main

pytest.importorskip("optuna")
pytestmark = pytest.mark.timeout(300)

NAME = "tiny"
TRIALS = 3


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """A real 3-trial cartpole sweep with 2 workers: (runs dir, space file, its output)."""
    runs = tmp_path_factory.mktemp("runs")
    space = write_space(runs.parent)
    log = runs.parent / "sweep.log"
    proc = start(sweep_argv(space, NAME, TRIALS, 6144, 2), runs, log)
    code = finish(proc, 240, log)
    assert code == 0, log.read_text()[-3000:]
    return runs, space, subprocess.CompletedProcess([], code, log.read_text(), "")


def test_every_trial_is_an_ordinary_run_with_the_sampled_values(finished_sweep) -> None:
    runs, _, done = finished_sweep
    trials = study(NAME, sqlite_url(runs, NAME)).get_trials()
    check_nothing_lost_or_repeated(trials, TRIALS)
    assert f"{TRIALS}/{TRIALS}" in done.stdout  # the progress bar reached the end
    for t in trials:
        run_dir = Path(t.user_attrs["run_dir"])
        assert run_dir.parent == runs / f"sweep-{NAME}"
        config = tomllib.loads((run_dir / "config.toml").read_text())
        assert config["ppo"]["lr"] == pytest.approx(t.params["ppo.lr"])
        assert config["ppo"]["update_epochs"] == t.params["ppo.update_epochs"]
        assert config["ppo"]["ent_coef"] == pytest.approx(t.params["ppo.ent_coef"])
        assert config["env"]["num_envs"] == 16  # the --set applies to every trial
        assert config["train"]["total_steps"] == 6144  # --steps
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["outcome"] == ("pruned" if t.state.name == "PRUNED" else "finished")
        if t.state.name == "COMPLETE":
            assert t.values[0] == pytest.approx(summary["mean_return"])
        assert t.user_attrs["first_step_seconds"] is not None and t.user_attrs["first_step_seconds"] > 0


def test_two_workers_ran_on_their_own_cores(finished_sweep) -> None:
    import os

    runs, _, _ = finished_sweep
    trials = study(NAME, sqlite_url(runs, NAME)).get_trials()
    by_pid: dict[int, list[int]] = {t.user_attrs["worker"]["pid"]: t.user_attrs["worker"]["cores"] for t in trials}
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2 and len(by_pid) == 2:
        first, second = by_pid.values()
        assert not set(first) & set(second), by_pid
    assert all(len(c) == max(1, len(cores) // 2) or c == cores[len(cores) // 2:] for c in by_pid.values())


def test_eval_works_on_a_trial(finished_sweep) -> None:
    from learner.evaluate import evaluate

    runs, _, _ = finished_sweep
    trial = study(NAME, sqlite_url(runs, NAME)).get_trials()[0]
    result = evaluate(trial.user_attrs["run_dir"], 3)
    assert result["episodes"] >= 3 and result["mean_return"] > 0  # at least: envs that end on one step all count


def test_report_prints_the_best_and_writes_csv_and_png(finished_sweep, tmp_path) -> None:
    runs, _, _ = finished_sweep
    out = subprocess.run([*sweep_argv(Path("x"), NAME, 1)[:4], "report", NAME, "--out", str(tmp_path)],
                         cwd=ROOT, env=environ(runs), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    trials = study(NAME, sqlite_url(runs, NAME)).get_trials()
    complete = sorted((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: -t.values[0])
    assert complete, "no complete trial to report"
    assert f"{complete[0].values[0]:.3f}".rstrip("0").rstrip(".") in out.stdout
    with open(tmp_path / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["trial"]) for r in rows) == sorted(t.number for t in trials)
    assert {"ppo.lr", "ppo.update_epochs", "ppo.ent_coef", "mean_return", "wall_seconds"} <= set(rows[0])
    import matplotlib.image

    image = matplotlib.image.imread(tmp_path / "report.png")
    assert image.shape[0] > 200 and image.shape[1] > 400  # 3 swept keys + the Pareto panel


def test_a_hopeless_trial_is_pruned_and_says_so(tmp_path, monkeypatch) -> None:
    """Two good trials (lr 0.01), then one that cannot learn (lr 1e-7): the median pruner stops the third."""
    monkeypatch.setenv("APPLIANCE_RUNS_DIR", str(tmp_path / "runs"))
    space = write_space(tmp_path, '[ppo.lr]\nlog_uniform = [1e-7, 1e-2]\n')
    overrides = ["env.num_envs=16", "train.checkpoint_every=0", "train.log_every_seconds=30"]
    spec = sweep.prepare("cartpole", str(space), 3, 16384, 1, None, "return", "median", "prune", overrides)
    spec.directory.mkdir(parents=True)
    storage = sweep.open_storage(spec.storage)
    first = sweep.create_study(spec, storage)
    for lr in (1e-2, 1e-2, 1e-7):
        first.enqueue_trial({"ppo.lr": lr}, skip_if_exists=False)
    from rich.console import Console

    result = sweep.run(spec, Console(file=open("/dev/null", "w")), progress=False)  # noqa: SIM115
    assert result["counts"]["pruned"] >= 1, result
    trials = study("prune", spec.storage).get_trials()
    check_nothing_lost_or_repeated(trials, 3)
    hopeless = trials[2]
    assert hopeless.params["ppo.lr"] == pytest.approx(1e-7)
    assert hopeless.state.name == "PRUNED", [(t.number, t.state.name, t.intermediate_values) for t in trials]
    summary = json.loads((Path(hopeless.user_attrs["run_dir"]) / "summary.json").read_text())
    assert summary["outcome"] == "pruned"
    assert summary["agent_steps"] < 16384  # stopped early, with a checkpoint
    assert [t.state.name for t in trials[:2]] == ["COMPLETE", "COMPLETE"]


# ---- bad input: one sentence, and the existing sweep untouched ----------------------------------------


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".ask.lock")}


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture) -> Callable[..., subprocess.CompletedProcess]:
    def run(*argv: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        code = main(list(argv))
        out = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out.out, out.err)

    return run


BAD_SPACES = {
    "unknown-key": ('[ppo.nope]\nuniform = [0.0, 1.0]\n', ["ppo.nope", "unknown config key"]),
    "bad-distribution": ('[ppo.lr]\ngaussian = [0.0, 1.0]\n', ["ppo.lr", "uniform, log_uniform, int, categorical"]),
    "log-of-zero": ('[ppo.lr]\nlog_uniform = [0.0, 0.1]\n', ["ppo.lr", "low > 0"]),
    "low-above-high": ('[ppo.clip]\nuniform = [0.3, 0.1]\n', ["ppo.clip", "low < high"]),
    "out-of-range": ('[ppo.gamma]\nuniform = [0.9, 1.5]\n', ["ppo.gamma", "[0, 1]"]),
    "float-for-int": ('[ppo.update_epochs]\nuniform = [1, 4]\n', ["ppo.update_epochs", "int = [low, high]"]),
    "wrong-choice-type": ('[policy.hidden]\ncategorical = [32, "big"]\n', ["policy.hidden", "big"]),
    "reserved": ('[train.total_steps]\nint = [1000, 2000]\n', ["train.total_steps", "--steps"]),
    "not-toml": ('[ppo.lr\n', ["not valid TOML"]),
}


@pytest.mark.parametrize("case", list(BAD_SPACES))
def test_a_bad_space_is_refused_and_the_sweep_is_untouched(finished_sweep, cli, monkeypatch, tmp_path, case) -> None:
    runs, _, _ = finished_sweep
    monkeypatch.setenv("APPLIANCE_RUNS_DIR", str(runs))
    text, needles = BAD_SPACES[case]
    bad = write_space(tmp_path, text, "bad.toml")
    before = digest(runs)
    result = cli("sweep", "--env", "cartpole", "--space", str(bad), "--name", NAME, "--trials", "5")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("appliance sweep: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert digest(runs) == before


@pytest.mark.parametrize("case", ["unreachable", "another-env", "another-space", "another-budget", "not-a-url"])
def test_a_bad_storage_is_refused_and_the_sweep_is_untouched(finished_sweep, cli, monkeypatch, tmp_path,
                                                             case) -> None:
    runs, space, _ = finished_sweep
    monkeypatch.setenv("APPLIANCE_RUNS_DIR", str(runs))
    url = sqlite_url(runs, NAME)
    argv = ["sweep", "--env", "cartpole", "--space", str(space), "--name", NAME, "--storage", url,
            "--steps", "6144", "--set", "env.num_envs=16", "--set", "train.checkpoint_every=0",
            "--set", "train.log_every_seconds=30"]
    needles = {
        "unreachable": ["cannot open sweep storage", "127.0.0.1"],
        "another-env": ["sweeps env cartpole, not grid"],
        "another-space": ["another space"],
        "another-budget": ["another steps"],
        "not-a-url": ["cannot open sweep storage"],
    }[case]
    if case == "unreachable":
        argv[argv.index(url)] = "postgresql://sweeper:secret@127.0.0.1:1/sweeps"
    elif case == "not-a-url":
        argv[argv.index(url)] = "nosuchdb://x"
    elif case == "another-env":
        argv[argv.index("cartpole")] = "grid"
        argv = argv[: argv.index("--set")]  # grid's config has other num_envs rules; the env alone must refuse
    elif case == "another-space":
        argv[argv.index(str(space))] = str(write_space(tmp_path, '[ppo.lr]\nlog_uniform = [1e-4, 1e-2]\n'))
    else:
        argv[argv.index("6144")] = "8192"
    before = digest(runs)
    result = cli(*argv)
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "secret" not in result.stderr
    assert digest(runs) == before


def test_report_of_no_such_sweep_is_one_sentence(cli, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("APPLIANCE_RUNS_DIR", str(tmp_path))
    result = cli("sweep", "report", "nothing-here")
    assert result.returncode == 2
    assert "no sweep 'nothing-here'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


# ---- units -------------------------------------------------------------------------------------------


def test_space_file_forms(tmp_path) -> None:
    params = sweep_space.load(write_space(tmp_path, (
        '"ppo.ent_coef" = { uniform = [0.0, 0.1] }\n'
        '[ppo.lr]\nlog_uniform = [1e-4, 1e-2]\n'
        '[env]\nnum_envs = { categorical = [16, 32] }\n'
        '[ppo.update_epochs]\nint = [1, 4]\n'
    )))
    assert sorted((p.key, p.kind) for p in params) == [
        ("env.num_envs", "categorical"), ("ppo.ent_coef", "uniform"), ("ppo.lr", "log_uniform"),
        ("ppo.update_epochs", "int")]
    assert next(p for p in params if p.key == "env.num_envs").choices == (16, 32)


def test_split_cores_never_overlaps_until_it_must() -> None:
    assert sweep.split_cores(2, [0, 1]) == [[0], [1]]
    assert sweep.split_cores(2, [0, 1, 2, 3, 4]) == [[0, 1], [2, 3, 4]]
    assert sweep.split_cores(1, [4, 5]) == [[4, 5]]
    assert sweep.split_cores(3, [0, 1]) == [[0], [1], [0]]  # more workers than cores: shared round-robin


def test_redact_hides_the_password() -> None:
    assert sweep.redact("postgresql://me:pw@db:5432/s") == "postgresql://me:***@db:5432/s"
    assert sweep.redact("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_return_per_second_is_two_objectives_without_pruning(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("APPLIANCE_RUNS_DIR", str(tmp_path / "runs"))
    space = write_space(tmp_path, '[ppo.lr]\nlog_uniform = [1e-3, 3e-2]\n')
    overrides = ["env.num_envs=16", "train.checkpoint_every=0", "train.log_every_seconds=30"]
    spec = sweep.prepare("cartpole", str(space), 2, 4096, 1, None, "return-per-second", None, "mo", overrides)
    assert spec.pruner == "none" and spec.directions() == ["maximize", "minimize"]
    from rich.console import Console

    sweep.run(spec, Console(file=open("/dev/null", "w")), progress=False)  # noqa: SIM115
    trials = study("mo", spec.storage).get_trials()
    check_nothing_lost_or_repeated(trials, 2)
    for t in trials:
        assert t.state.name == "COMPLETE" and len(t.values) == 2
        assert t.values == [pytest.approx(t.user_attrs["mean_return"]), pytest.approx(t.user_attrs["wall_seconds"])]


def test_sweeps_from_two_run_dirs_on_one_sqlite_file_take_turns_to_ask(tmp_path) -> None:
    """The ask lock follows the database, not the run dir: else both count 'one left' and each asks."""
    import threading

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    specs = [sweep.Spec(name="one", env="cartpole", params=[], trials=2, steps=1024, objective="return",
                        pruner="none", overrides=[], storage=url, directory=tmp_path / d) for d in ("a", "b")]
    for spec in specs:
        spec.directory.mkdir()
    storage = sweep.open_storage(url)
    sweep.create_study(specs[0], storage)
    held = sweep.load_study(specs[0], storage)._storage
    other_asked = threading.Event()

    def other() -> None:
        with sweep._ask_lock(specs[1], held):
            other_asked.set()

    with sweep._ask_lock(specs[0], held):
        thread = threading.Thread(target=other, daemon=True)
        thread.start()
        assert not other_asked.wait(0.5), "the other run dir's sweep asked while this one counted"
    assert other_asked.wait(30), "the other sweep never got the lock"
    thread.join(30)


def test_a_script_without_a_main_guard_runs_its_sweep_once(tmp_path) -> None:
    """Workers are fresh interpreters: the caller's __main__ is never run again inside them."""
    import sys

    space = write_space(tmp_path, '[ppo.lr]\nlog_uniform = [1e-3, 3e-2]\n')
    script = tmp_path / "script.py"
    script.write_text(
        "from appliance.cli import main\n"
        f"code = main(['sweep', '--env', 'cartpole', '--space', {str(space)!r}, '--trials', '2', '--steps', '2048',\n"
        "             '--name', 'unguarded', '--set', 'env.num_envs=16'])\n"
        "print('sweep exit', code)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=environ(tmp_path / "runs"))
    assert done.returncode == 0 and done.stdout.count("sweep exit 0") == 1, done.stdout[-2000:] + done.stderr[-3000:]
    trials = study("unguarded", sqlite_url(tmp_path / "runs", "unguarded")).get_trials()
    check_nothing_lost_or_repeated(trials, 2)


def test_workers_that_keep_dying_end_the_sweep_with_one_sentence(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("APPLIANCE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(sweep, "_WORKER", "import sys; sys.exit(1)")  # a worker that dies before any trial
    space = write_space(tmp_path, '[ppo.lr]\nlog_uniform = [1e-3, 3e-2]\n')
    spec = sweep.prepare("cartpole", str(space), 2, 2048, 1, None, "return", None, "dying", [])
    from rich.console import Console

    result = sweep.run(spec, Console(file=open("/dev/null", "w")), progress=False)  # noqa: SIM115
    assert result["replaced_workers"] == 4 and result["failing"] == "worker 0 kept dying (exit code 1, 4 replaced)"
