"""Actors start from any caller, and never run the caller's main module again.

One program (a native env, a creator function and a lambda, both defined in
``__main__``) runs as a script with and without a main guard, piped to ``python -``,
as ``python -c``, in an interactive interpreter, in a Jupyter kernel (a real notebook
through nbclient) and under torchrun. The program appends its pid to a log at the top
level: one line means nothing ran it twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Every top-level block ends with a blank line, so the interactive interpreter reads it too.
PROGRAM = textwrap.dedent("""\
    import os
    import numpy as np
    import gymnasium
    from actors import ActorPool

    with open({log!r}, "a") as log:
        log.write(str(os.getpid()) + "\\n")

    def short_cartpole(length=500):
        return gymnasium.make("CartPole-v1", max_episode_steps=length)

    returns = []
    envs_ = [("cartpole", {{}}), (short_cartpole, {{"length": 5}}), (lambda: gymnasium.make("CartPole-v1"), {{}})]
    for env, kwargs in envs_:
        with ActorPool(env, num_envs=4, num_actors=2, batch_size=4, seed=1, **kwargs) as pool:
            pool.async_reset(1)
            for _ in range(60):
                obs = pool.recv()[0]
                pool.send(np.ones(len(obs), np.int32))
            stats = pool.episode_stats()
            returns.append((stats["episodes"], stats["episode_length"]))

    print("ACTORS-OK", returns)
""")


def program(tmp_path: Path) -> tuple[str, Path]:
    log = tmp_path / "runs.log"
    return PROGRAM.format(log=str(log)), log


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def check(out: str, log: Path) -> None:
    assert "ACTORS-OK" in out, out
    stats = eval(out.split("ACTORS-OK", 1)[1].strip().splitlines()[0])  # noqa: S307
    assert len(stats) == 3 and all(episodes > 0 for episodes, _ in stats), out
    assert stats[1][1] == 5 < stats[2][1]  # the length keyword reached the creator in the actors
    assert len(log.read_text().split()) == 1, "the caller's main module ran again"


def run(args: list[str], tmp_path: Path, stdin: str | None = None) -> str:
    done = subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=180, env=child_env(), cwd=tmp_path
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    return out


def test_script_without_main_guard(tmp_path: Path) -> None:
    code, log = program(tmp_path)
    (tmp_path / "t.py").write_text(code)
    check(run([sys.executable, "t.py"], tmp_path), log)


def test_script_with_main_guard(tmp_path: Path) -> None:
    code, log = program(tmp_path)
    body = "def main():\n" + textwrap.indent(code, "    ") + "\nif __name__ == '__main__':\n    main()\n"
    (tmp_path / "t.py").write_text(body)
    check(run([sys.executable, "t.py"], tmp_path), log)


def test_code_piped_to_python_dash(tmp_path: Path) -> None:
    code, log = program(tmp_path)
    check(run([sys.executable, "-"], tmp_path, stdin=code), log)


def test_python_dash_c(tmp_path: Path) -> None:
    code, log = program(tmp_path)
    check(run([sys.executable, "-c", code], tmp_path), log)


def test_interactive_interpreter(tmp_path: Path) -> None:
    code, log = program(tmp_path)
    out = run([sys.executable, "-i", "-q"], tmp_path, stdin=code)
    assert "Traceback" not in out, out
    check(out, log)


def test_torchrun_started_process(tmp_path: Path) -> None:
    code, log = program(tmp_path)
    (tmp_path / "t.py").write_text(code)
    out = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", "t.py"],
              tmp_path)
    check(out, log)


def test_jupyter_kernel_runs_a_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    code, log = program(tmp_path)
    monkeypatch.setenv("PYTHONPATH", child_env()["PYTHONPATH"])
    # Cells as a user writes them: imports, a creator, then the pool.
    cells = [nbformat.v4.new_code_cell(part) for part in code.split("\n\n") if part.strip()]
    nb = nbformat.v4.new_notebook(cells=cells)
    nbclient.NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                            ).execute()
    out = "".join(o.get("text", "") for cell in nb.cells for o in cell.get("outputs", []))
    check(out, log)


def test_fork_server_is_one_clean_thread_and_restarts_actors() -> None:
    import numpy as np

    from actors import ActorPool, forkserver

    with ActorPool("cartpole", num_envs=4, num_actors=2, batch_size=4, restart=True) as pool:
        server = forkserver.server()
        assert len(os.listdir(f"/proc/{server.process.pid}/task")) == 1
        with open(f"/proc/{server.process.pid}/cmdline", "rb") as f:
            assert b"actors.forkserver" in f.read()  # not the caller's main module
        pool.async_reset(0)
        os.kill(pool.pids[0], 9)
        for _ in range(200):
            obs = pool.recv()[0]
            pool.send(np.zeros(len(obs), np.int32))
            if pool.restarts:
                break
        assert pool.restarts == 1
        assert all(forkserver.server().exitcodes.get(pid) is None for pid in pool.pids)
