"""`appliance train` restart semantics (--resume, --resume-if-present) and per-rank core slices."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from appliance.cli import main
from learner import checkpoint
from learner import config as C
from learner.pools import make_pool, rank_cores

TINY = ["--env", "cartpole", "--device", "cpu", "--set", "env.num_envs=8", "--set", "ppo.num_steps=8",
        "--set", "train.checkpoint_every=1", "--set", "train.log_every_seconds=1000"]  # fmt: skip


def _err(capsys: pytest.CaptureFixture) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


def _train(run_dir: Path, *args: str) -> int:
    return main(["train", *TINY, "--run-dir", str(run_dir), *args])


def test_resume_if_present_starts_fresh_then_continues(tmp_path: Path) -> None:
    assert _train(tmp_path, "--resume-if-present", "--total-steps", "128") == 0  # 64 steps/update
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["ckpt_00000001.pt", "ckpt_00000002.pt"]
    assert _train(tmp_path, "--resume-if-present", "--total-steps", "256") == 0
    _, state = checkpoint.load_latest(tmp_path)
    assert state["updates"] == 4 and state["agent_steps"] == 256
    assert json.loads((tmp_path / "summary.json").read_text())["resumed_from_update"] == 2


@pytest.mark.parametrize(("num_envs", "updates"), [(4, 4), (16, 1)])
def test_a_resumed_run_with_another_batch_trains_the_steps_left(tmp_path: Path, num_envs: int,
                                                                 updates: int) -> None:
    """The budget counts agent steps: 128 of 256 done in batches of 64, then 32 or 128 per update."""
    assert _train(tmp_path, "--total-steps", "128") == 0
    assert _train(tmp_path, "--resume", "--total-steps", "256", "--set", f"env.num_envs={num_envs}") == 0
    _, state = checkpoint.load_latest(tmp_path)
    assert state["updates"] == 2 + updates and state["agent_steps"] == 256
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["total_steps"] == 256 and summary["agent_steps"] == 256


def test_a_finished_run_names_the_budget_that_trains_one_more_update(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert _train(tmp_path, "--total-steps", "128") == 0
    capsys.readouterr()
    assert _train(tmp_path, "--resume", "--total-steps", "150") == 0  # rounds down to 128: finished
    assert "at least 192 (one more update)" in " ".join(capsys.readouterr().out.split())
    assert _train(tmp_path, "--resume", "--total-steps", "192") == 0
    assert checkpoint.load_latest(tmp_path)[1]["agent_steps"] == 192


def test_resume_without_a_checkpoint_names_the_dir(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _train(tmp_path / "empty", "--resume") == 2
    err = _err(capsys)
    assert str(tmp_path / "empty") in err.replace(" ", "") and "holds no checkpoint" in err
    assert not (tmp_path / "empty" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--resume", "--resume-if-present"], "not both"), (["--resume-if-present"], "needs --run-dir")],
)
def test_contradictory_resume_flags_are_one_clear_error(
    args: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    extra = ["--run-dir", "nowhere"] if "--resume" in args else []
    assert main(["train", *TINY, *extra, *args]) == 2
    assert message in _err(capsys)


def test_fresh_run_refuses_a_dir_with_checkpoints_and_leaves_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert _train(tmp_path, "--total-steps", "64") == 0
    before = {p.name: p.read_bytes() for p in checkpoint.list_checkpoints(tmp_path)}
    assert _train(tmp_path, "--total-steps", "64") == 2
    assert "already holds checkpoints" in _err(capsys)
    assert {p.name: p.read_bytes() for p in checkpoint.list_checkpoints(tmp_path)} == before


def test_fresh_run_keeps_a_config_toml_it_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A folder with files of its own (or a run that died before its first checkpoint) is not overwritten."""
    mine = tmp_path / "config.toml"
    mine.write_text("[project]\nname = 'mine'\n")
    assert _train(tmp_path, "--total-steps", "64") == 2
    err = _err(capsys)
    assert "already holds config.toml" in err and "--resume-if-present" in err
    assert mine.read_text() == "[project]\nname = 'mine'\n"
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "summary.json").exists()


def test_resume_if_present_starts_over_in_a_run_dir_without_checkpoints(tmp_path: Path) -> None:
    """A pod that died before its first checkpoint restarts with the same flags and trains."""
    (tmp_path / "config.toml").write_text("# the first start's, before it died\n")
    (tmp_path / "history.jsonl").write_text("")
    assert _train(tmp_path, "--resume-if-present", "--total-steps", "64") == 0
    assert "cartpole" in (tmp_path / "config.toml").read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["agent_steps"] == 64


@pytest.mark.parametrize("cores", [[0, 1], [0, 1, 2, 3, 4], list(range(8)), [3, 5, 7]])
@pytest.mark.parametrize("local_world", [1, 2, 3])
def test_rank_cores_are_disjoint_slices_of_the_node(cores: list[int], local_world: int) -> None:
    slices = [rank_cores(r, local_world, cores) for r in range(local_world)]
    if len(cores) >= local_world:
        assert sorted(c for s in slices for c in s) == sorted(cores)  # disjoint and covering
        assert max(map(len, slices)) - min(map(len, slices)) <= 1
    else:
        assert all(len(s) == 1 and s[0] in cores for s in slices)


def test_rank_cores_rejects_a_rank_outside_the_node() -> None:
    with pytest.raises(ValueError, match="local_rank"):
        rank_cores(2, 2, [0, 1])
    with pytest.raises(ValueError, match="allowed"):
        rank_cores(0, 1, [])


def test_actor_pool_of_a_local_rank_pins_its_actors_to_that_ranks_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    config = C.apply_overrides(
        C.load("cartpole"), ["env.num_envs=4", "pool.kind=actors", "pool.num_actors=2", "pool.batch_size=4"]
    )
    mine = set(rank_cores(1, 2, allowed))
    with make_pool(config, rank=1) as pool:
        assert set(pool.cores) <= mine
        for pid in pool.pids:
            assert pid is not None and os.sched_getaffinity(pid) <= mine
