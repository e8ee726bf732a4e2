"""envs/c/grid.h under AddressSanitizer and UBSan, driven from C (tests/envs/c/grid_sanitized.c)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_grid_header_is_clean_under_sanitizers(tmp_path: Path) -> None:
    exe = tmp_path / "grid_sanitized"
    subprocess.run(
        ["gcc", "-std=c99", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
         "-Wall", "-Wextra", "-Werror", f"-I{ROOT / 'envs' / 'c'}",
         str(ROOT / "tests" / "envs" / "c" / "grid_sanitized.c"), "-o", str(exe)],
        check=True, timeout=120,
    )
    done = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert sum(line.startswith("ok ") for line in lines) == 7
    assert "parameter 'agents'" in lines[-1]
