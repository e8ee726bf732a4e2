"""The README documents what the code really has."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def config_keys() -> set[str]:
    keys = set()
    for path in (ROOT / "learner" / "configs").glob("*.toml"):
        for section, table in tomllib.loads(path.read_text()).items():
            if section == "on_cpu":  # dotted keys of other sections, documented as a table
                keys.add("on_cpu.*")
                continue
            for key, value in table.items():
                keys.add(f"{section}.{key}.*" if isinstance(value, dict) else f"{section}.{key}")
    return keys


def test_config_reference_names_every_shipped_key() -> None:
    reference = README.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_]+\.[a-z_.*]+)`", reference))
    missing = sorted(config_keys() - documented)
    assert not missing, f"README's configuration reference lacks {missing}"


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
