"""`appliance bench actors` smoke runs (tiny settings) and the autotune cache API."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from actors import autotune
from appliance.cli import main
from learner import config as C
from learner.pools import actor_layout


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "appliance" / "autotune.json"


def test_bench_actors_writes_medians_and_layouts(tmp_path: Path) -> None:
    out = tmp_path / "actors.json"
    # 0.2 s per entry: the actors' CPU time is counted in 10 ms clock ticks.
    assert main(["bench", "actors", "--seconds", "0.2", "--runs", "1", "--envs-per-actor", "512",
                 "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    names = [r["name"] for r in records]
    assert names[0] == "raw C loop, 1 core" and "pool, 1 actors" in names
    assert records[0]["num_envs"] == 512
    together = next(r for r in records if r["name"].endswith("cores at once"))
    assert together["num_envs"] == 512 * records[0]["cores"]
    for r in records:
        assert r["bench"] == "actors" and r["steps_per_second"] > 0 and len(r["runs"]) == 1
        assert {"num_envs", "num_actors", "batch_size", "cores"} <= set(r)
    own = [r for r in records if r["name"].startswith(("raw", "pool"))]
    assert all(r["cpu_ns_per_step"] > 0 for r in own)
    per_core, cores = records[0]["num_envs"], records[0]["cores"]
    crowded = [r["num_envs"] for r in own if r["num_actors"] == 4 * cores and r["order"] == "turn"]
    # 4x the actors twice: the same total envs, and the same envs per actor as one actor per core.
    assert sorted(crowded) == [per_core * cores, per_core * 4 * cores]
    # Order "ready", one actor per core and 4x: same envs, batches of half an actor's envs.
    ready = sorted((r["num_actors"], r["num_envs"], r["batch_size"]) for r in own if r.get("order") == "ready")
    assert ready == [(cores, per_core * cores, per_core // 2), (4 * cores, per_core * cores, per_core // 2)]


def test_autotune_saves_the_fastest_layout_for_load(tmp_path: Path, private_cache: Path) -> None:
    assert autotune.load("cartpole") is None
    out = tmp_path / "tune.json"
    assert main(["bench", "actors", "--autotune", "--env", "cartpole", "--seconds", "0.02", "--runs", "1",
                 "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    best = max(records, key=lambda r: r["steps_per_second"])
    layout = autotune.load("cartpole")
    assert layout == {k: best[k] for k in autotune.LAYOUT_KEYS}
    assert private_cache.exists()
    assert autotune.load("cartpole", cores=999) is None


def test_autotune_for_order_ready_is_saved_apart(tmp_path: Path, private_cache: Path) -> None:
    turn = {"num_envs": 64, "num_actors": 2, "batch_size": 32}
    autotune.save("cartpole", turn)
    out = tmp_path / "tune.json"
    assert main(["bench", "actors", "--autotune", "--order", "ready", "--env", "cartpole", "--seconds", "0.02",
                 "--runs", "1", "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    assert {r["order"] for r in records} == {"ready"}
    best = max(records, key=lambda r: r["steps_per_second"])
    assert autotune.load("cartpole", order="ready") == {k: best[k] for k in autotune.LAYOUT_KEYS}
    assert autotune.load("cartpole") == turn  # the turn-order layout is untouched
    # A config in order "ready" takes the layout tuned for it: its actors and number of groups.
    cfg = C.apply_overrides(C.load("cartpole"), ["pool.kind=actors", "pool.order=ready",
                                                 f"env.num_envs={best['num_envs']}"])
    assert actor_layout(cfg, cores=len(os.sched_getaffinity(0))) == (best["num_actors"], best["batch_size"])


def test_order_without_autotune_is_one_clear_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "actors", "--order", "ready", "--seconds", "0.01"]) == 2
    assert "--order chooses what --autotune measures" in capsys.readouterr().err


@pytest.mark.parametrize("order", ["turn", "ready"])
def test_candidates_are_valid_layouts(order: str) -> None:
    from actors.pool import plan_layout

    for cores in (1, 2, 3, 8):
        for step_s in (1e-9, 5e-8, 1e-5):
            layouts = autotune.candidates(cores, step_s, order)
            assert layouts
            for layout in layouts:
                plan_layout(layout["num_envs"], layout["num_actors"], layout["batch_size"], local=order == "ready")


def test_save_rejects_incomplete_layouts() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        autotune.save("cartpole", {"num_envs": 4, "num_actors": 2})


def test_unknown_env_is_one_clear_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "actors", "--env", "nope", "--seconds", "0.01"]) == 2
    assert "unknown env 'nope'" in capsys.readouterr().err
