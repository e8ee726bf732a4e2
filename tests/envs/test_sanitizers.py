"""Every native env under AddressSanitizer and UndefinedBehaviorSanitizer.

The extension is rebuilt with ``APPLIANCE_SANITIZE=1`` (see setup.py) into a
temporary copy of the package, then a child process with the ASan runtime
preloaded steps every env in ``envs.native_names()`` for at least a million agent-steps
each, with out-of-range actions and resets mixed in. Any report fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import envs

ROOT = Path(__file__).resolve().parents[2]
AGENT_STEPS = 1_000_000
REPORT_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "UndefinedBehaviorSanitizer", "LeakSanitizer")

# Runs in the child: steps every env, printing which extension it loaded.
CHILD = r"""
import sys
import numpy as np
import envs
from envs import _native
from envs.native import KINDS, action_high

print("loaded", _native.__file__, flush=True)
INT32 = np.iinfo(np.int32)
agent_steps = int(sys.argv[1])


def run(name, num_envs, params, seed):
    env = envs.make(name, num_envs=num_envs, seed=seed, **params)
    rng = np.random.default_rng(seed)
    n = action_high(env.single_action_space)
    steps = -(-agent_steps // env.num_agents)
    batches = rng.integers(0, n, size=(16, *env.actions.shape), dtype=np.int32)
    wild = rng.integers(INT32.min, INT32.max, size=(4, *env.actions.shape), endpoint=True, dtype=np.int32)
    wild[0, :] = INT32.min
    wild[1, :] = INT32.max
    wild[2, :] = n
    wild[3, :] = -1
    for t in range(steps):
        env.actions[...] = wild[t % 4] if t % 97 == 0 else batches[t % 16]
        env.step()
        if t % 5000 == 4999:
            env.reset(seed + t)
        if t % 1000 == 0:
            env.episode_stats()
    env.step_n(10)
    env.close()
    return env.num_agents * steps


for name in envs.native_names():
    total = run(name, 256, {}, 1)
    # The smallest legal parameters exercise edges (1-step episodes, tiny maps).
    low = {p[0]: p[2] for p in KINDS[name]["params"]}
    try:
        total += run(name, 3, low, 2)
    except ValueError as error:  # a cross-parameter rule may reject all-minimum params
        print(name, "minimum params rejected:", error, flush=True)
    print(name, total, "agent-steps", flush=True)
print("done", flush=True)
"""


# Runs in the child: the actor's C step loop over every env, fed queued, partial and bad commands.
SERVE_CHILD = r"""
import os
import threading
import numpy as np
import envs
from envs import _native
from envs.native import action_high

print("loaded", _native.__file__, flush=True)
COMMANDS = 6000  # 18 KB queued at once: more than the loop reads in one go
WIRE = _native.wire()  # the protocol's constants (envs/c/wire.h)


def answers(data):
    count, i = 0, 0
    while i < len(data):
        i += 1 if data[i:i + 1] == WIRE["done"] else WIRE["episodes_size"]
        count += 1
    assert i == len(data), "a done message was cut"
    return count


for name in envs.native_names():
    parts = [envs.make(name, num_envs=8, seed=s) for s in (1, 2, 3)]
    for part in parts:
        high = action_high(part.single_action_space)
        part.actions[...] = np.random.default_rng(0).integers(0, high, part.actions.shape)
    loop = envs.serve_loop(parts)
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    os.set_blocking(go_r, False)
    got = []
    reader = threading.Thread(target=lambda: got.extend(iter(lambda: os.read(done_r, 1 << 16), b"")))
    reader.start()
    order = np.random.default_rng(1).integers(0, 3, COMMANDS)
    step = WIRE["step"]
    os.write(go_w, b"".join(step + int(j).to_bytes(WIRE["step_size"] - 1, "little") for j in order))
    assert loop(go_r, done_w, 5) is None
    for bad in (step + b"\x09\x00", step + b"\x01", WIRE["quit"]):  # no such part; half a command; not a step
        os.write(go_w, bad)
        assert loop(go_r, done_w, 5) == bad
    os.close(go_w)
    assert loop(go_r, done_w, 5) == b""
    os.close(done_w)
    reader.join(30)
    assert answers(b"".join(got)) == COMMANDS
    for fd in (go_r, done_r):
        os.close(fd)
    print(name, "served", COMMANDS, flush=True)
print("done", flush=True)
"""


def sanitizer_runtime() -> tuple[str, str]:
    """Paths of gcc's ASan and UBSan runtimes, or a skip naming what is missing."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot build the sanitized extension")
    paths = []
    for lib in ("libasan.so", "libubsan.so"):
        path = subprocess.run([gcc, f"-print-file-name={lib}"], capture_output=True, text=True, timeout=60)
        found = path.stdout.strip()
        if path.returncode != 0 or not os.path.isabs(found) or not os.path.exists(found):
            pytest.skip(f"gcc has no {lib} (install the gcc package's sanitizer runtimes)")
        paths.append(os.path.realpath(found))
    return paths[0], paths[1]


def sanitized_env(build: Path) -> dict[str, str]:
    """A child's environment: the ASan runtime preloaded, the sanitized build first on the path."""
    asan, _ = sanitizer_runtime()
    return {
        **os.environ,
        "LD_PRELOAD": asan,
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
        "PYTHONPATH": str(build),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@pytest.fixture(scope="module")
def sanitized_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    asan, _ = sanitizer_runtime()
    root = tmp_path_factory.mktemp("sanitized")
    shutil.copytree(ROOT / "envs", root / "envs", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copy(ROOT / "setup.py", root / "setup.py")
    env = {**os.environ, "APPLIANCE_SANITIZE": "1"}
    build = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace", "--build-temp", str(root / "build")],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    built = list((root / "envs").glob("_native*.so"))
    assert len(built) == 1, built
    symbols = subprocess.run(["nm", "-D", str(built[0])], capture_output=True, text=True, timeout=60)
    if symbols.returncode == 0:
        assert "__asan_" in symbols.stdout and "__ubsan_" in symbols.stdout, "extension not instrumented"
    return root


def run_clean(build: Path, script: str, *args: str, timeout: float) -> tuple[list[str], str]:
    """Runs ``script`` against the sanitized build; asserts it exited cleanly with no report.

    Returns the child's stdout lines and a report to print on a failed assertion.
    """
    child = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=build, env=sanitized_env(build), capture_output=True, text=True, timeout=timeout,
    )
    report = f"exit {child.returncode}\nstdout:\n{child.stdout[-3000:]}\nstderr:\n{child.stderr[-6000:]}"
    assert child.returncode == 0, report
    for marker in REPORT_MARKERS:
        assert marker not in child.stderr, report
    lines = child.stdout.splitlines()
    assert Path(lines[0].split()[1]).parent == build / "envs", report  # the instrumented extension ran
    assert lines[-1] == "done", report
    return lines, report


@pytest.mark.sanitizer
@pytest.mark.timeout(600)
def test_every_env_is_clean_under_asan_and_ubsan(sanitized_build: Path) -> None:
    lines, report = run_clean(sanitized_build, CHILD, str(AGENT_STEPS), timeout=540)
    stepped = {line.split()[0]: int(line.split()[1]) for line in lines if line.endswith("agent-steps")}
    assert set(stepped) == set(envs.native_names()), report
    assert all(count >= AGENT_STEPS for count in stepped.values()), stepped


@pytest.mark.sanitizer
@pytest.mark.timeout(300)
def test_the_actor_step_loop_is_clean_under_asan_and_ubsan(sanitized_build: Path) -> None:
    lines, report = run_clean(sanitized_build, SERVE_CHILD, timeout=240)
    served = {line.split()[0] for line in lines if " served " in line}
    assert served == set(envs.native_names()), report
