"""The README documents what the code really has."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_config_reference_is_the_schemas() -> None:
    """The README's configuration reference is `appliance config --markdown`, not typed by hand."""
    from learner import schema

    assert schema.with_reference(README) == README, (
        "README's configuration reference differs from learner/schema.py: run "
        "`appliance config --markdown --update README.md`"
    )


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run extracts the line after the marker; it must be exactly one command line."""
    block = README.split("<!-- test-command -->", 1)[1].split("```", 2)[1]
    lines = [line for line in block.splitlines() if line and line != "bash"]
    assert len(lines) == 1 and "pytest" in lines[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci


def test_every_command_in_the_quickstart_exists() -> None:
    from appliance.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # noqa: SLF001
    used = set(re.findall(r"^appliance ([a-z]+)", README, flags=re.M))
    used |= set(re.findall(r"`appliance ([a-z]+)", README))
    assert used <= commands, f"README uses unknown commands {sorted(used - commands)}"


def test_bench_table_markers_render() -> None:
    out = subprocess.run(
        ["python", "-m", "appliance", "bench", "report", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    assert README.count("<!-- bench:start -->") == 1 and README.count("<!-- bench:end -->") == 1


# ---------------------------------------------------------------------------
# The README's commands, executed as written.
#
# Every shell command of "The two commands" and "Quickstart" is run (or, for the
# install and CI steps that would re-install this machine, checked against what
# they install) and its stated outcome asserted. A command added to those sections
# without a case here fails `test_every_readme_command_has_a_case`.
# `appliance` resolves to this checkout through a shim on PATH, so the test runs
# the code it sits next to whether or not the package is installed.

def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def shell_commands(text: str) -> list[str]:
    """Each command line of the ```bash blocks, comments dropped."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


QUICKSTART = shell_commands(section("Quickstart"))
TWO_COMMANDS = shell_commands(section("The two commands"))
MAIN_COMMAND, TEST_COMMAND = TWO_COMMANDS
EXAMPLE_RUN = "runs/cartpole-20261124-010203"  # the run directory the eval line names
CARTPOLE = "appliance train --env cartpole --target-return 475"
COVERED = {
    "appliance envs", "appliance doctor", CARTPOLE, "appliance train",
    f"appliance eval {EXAMPLE_RUN} --episodes 100",
    'appliance dashboard push --url http://grafana:3000 --token "$GRAFANA_TOKEN"',
    "appliance dashboard export appliance-dashboard.json",
}


def test_every_readme_command_has_a_case() -> None:
    assert set(QUICKSTART) == COVERED, f"README Quickstart commands changed: {sorted(set(QUICKSTART) ^ COVERED)}"
    assert MAIN_COMMAND.split(" && ")[-1] == "appliance train"
    assert len(TWO_COMMANDS) == 2


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory):
    """Runs one README line with bash in a fresh user's directory; `appliance` is this checkout."""
    home = tmp_path_factory.mktemp("newcomer")
    bin_dir = home / ".bin"
    bin_dir.mkdir()
    shim = bin_dir / "appliance"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m appliance "$@"\n')
    shim.chmod(0o755)
    cwd = home / "work"
    cwd.mkdir()

    def run(line: str, timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
        environ.update(PATH=f"{bin_dir}:{environ['PATH']}", PYTHONPATH=str(ROOT), COLUMNS="200",
                       APPLIANCE_METRICS_PORT=str(free_port()), **env)
        return subprocess.run(["bash", "-c", line], cwd=cwd, env=environ, capture_output=True, text=True,
                              timeout=timeout)

    run.cwd = cwd  # type: ignore[attr-defined]
    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summary_of(stdout: str) -> dict:
    """The JSON summary `appliance train` prints last."""
    return json.loads(stdout[stdout.rindex("\n{") + 1:] if "\n{" in stdout else stdout[stdout.index("{"):])


def test_install_lines_name_what_pyproject_has() -> None:
    """The pip steps are not run (they would re-point this machine's install): what they install must exist."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = set(project["optional-dependencies"])
    torch_req = next(d for d in project["dependencies"] if d.startswith("torch"))
    for line in (MAIN_COMMAND, TEST_COMMAND):
        for step in line.split(" && "):
            if step.startswith("pip install torch=="):
                pinned = step.split("==", 1)[1]
                low = torch_req.split(">=", 1)[1]
                assert tuple(map(int, pinned.split("."))) >= tuple(map(int, low.split("."))), torch_req
            elif step.startswith("pip install -e"):
                spec = step.split("-e", 1)[1].strip().strip('"')
                named = re.findall(r"\[(.*)\]", spec)
                assert spec.startswith("."), step
                assert set(",".join(named).split(",")) - {""} <= extras, step
    assert (ROOT / "pyproject.toml").exists()
    assert project["scripts"]["appliance"] == "appliance.cli:run"
    documented = set(re.findall(r"^\| `([a-z]+)` \|", section("The two commands"), flags=re.M))
    assert documented == extras, f"README's extras table {sorted(documented)} != pyproject's {sorted(extras)}"


def test_the_test_command_steps() -> None:
    """apt-get's prometheus, ruff and mypy are checked for real; pytest is this run (`.ci/run` runs the line)."""
    steps = TEST_COMMAND.split(" && ")
    assert steps[0] == "apt-get update" and steps[1] == "apt-get install -y prometheus"
    assert steps[-3:] == ["ruff check .", "mypy", "pytest"]
    if shutil.which("prometheus") is None:
        pytest.skip("Debian's prometheus is not installed here (CI installs it)")
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert ruff.returncode == 0, ruff.stdout
    mypy = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert mypy.returncode == 0, mypy.stdout


def test_envs_lists_every_env(shell) -> None:
    import envs

    done = shell("appliance envs", timeout=120)
    assert done.returncode == 0, done.stderr
    for name in envs.names():
        assert name in done.stdout


def test_doctor_passes(shell) -> None:
    done = shell("appliance doctor", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "snake" in done.stdout and "/dev/shm" in done.stdout


@pytest.mark.timeout(600)
def test_cartpole_reaches_475_then_eval(shell) -> None:
    """The Quickstart's train line as written (seed 1), then its eval line on that run."""
    done = shell(CARTPOLE)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    summary = summary_of(done.stdout)
    assert summary["outcome"] == "target_reached" and summary["mean_return"] >= 475, summary
    assert summary["seconds_to_target"] > 0
    runs = sorted((shell.cwd / "runs").glob("cartpole-*"))
    assert len(runs) == 1
    assert (runs[0] / "checkpoints").is_dir() and (runs[0] / "summary.json").exists()
    runs[0].rename(shell.cwd / EXAMPLE_RUN)  # the README's example directory name
    done = shell(f"appliance eval {EXAMPLE_RUN} --episodes 100", timeout=240)
    assert done.returncode == 0, done.stderr
    mean = float(re.search(r"mean return ([\d.]+) over (\d+) episodes", done.stdout).group(1))
    assert mean >= 400, done.stdout


@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", [0, 2, 3, 4])  # 1, the default, is the line as written above
def test_cartpole_reaches_475_for_other_seeds(shell, seed) -> None:
    done = shell(f"{CARTPOLE} --seed {seed} --run-dir seed{seed}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    summary = summary_of(done.stdout)
    assert summary["outcome"] == "target_reached" and summary["mean_return"] >= 475, summary


@pytest.mark.timeout(300)
def test_main_job_on_this_machine(shell) -> None:
    """`appliance train` as written, its budget cut to one update with the documented variable."""
    from appliance import train

    config, _ = train.resolve(None, [], None, False, {})
    if config["train"]["device"] == "auto" and not __import__("torch").cuda.is_available():
        assert f"{config['train']['total_steps']:,}" in section("The two commands")  # the CPU budget stated
    done = shell("appliance train", APPLIANCE_TOTAL_STEPS="4096")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("training snake on ") and "1 rank" in first and "4,096 agent steps" in first, first
    summary = summary_of(done.stdout)
    assert summary["outcome"] == "finished" and summary["agent_steps"] >= 4096
    run = Path(summary["checkpoint"]).parent.parent
    run = run if run.is_absolute() else shell.cwd / run
    assert run.parent == shell.cwd / "runs" and run.name.startswith("snake-")
    assert {p.name for p in run.iterdir()} >= {"config.toml", "checkpoints", "summary.json", "history.jsonl"}


class _Grafana(BaseHTTPRequestHandler):
    """Answers like Grafana's POST /api/dashboards/db and keeps what it was sent."""

    seen: list[tuple[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        answer = json.dumps({"status": "success", "uid": body["dashboard"]["uid"], "url": "/d/x/appliance"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args: object) -> None:
        pass


def test_dashboard_push_and_export(shell) -> None:
    """The push line with its placeholder Grafana (http://grafana:3000) swapped for a local one."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Grafana)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        line = next(c for c in QUICKSTART if c.startswith("appliance dashboard push"))
        local = line.replace("http://grafana:3000", f"http://127.0.0.1:{server.server_address[1]}")
        done = shell(local, timeout=120, GRAFANA_TOKEN="sekrit")
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    assert _Grafana.seen == [("/api/dashboards/db", "Bearer sekrit")]
    done = shell("appliance dashboard export appliance-dashboard.json", timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((shell.cwd / "appliance-dashboard.json").read_text())["uid"]


def python_snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_every_python_snippet_runs_as_a_plain_script(tmp_path: Path) -> None:
    """Each snippet as a newcomer pastes it: a file of its own, no main guard, run by python."""
    import os
    import sys

    snippets = python_snippets()
    assert len(snippets) >= 4 and any("SB3" in s or "stable_baselines3" in s for s in snippets)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for i, code in enumerate(snippets):
        script = tmp_path / f"snippet_{i}.py"
        script.write_text(code)
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240,
                              env=env, cwd=tmp_path)
        assert done.returncode == 0, f"README snippet {i} failed:\n{code}\n{done.stdout}{done.stderr}"
