"""Bench JSON says which CPU it ran on, and the README table shows it."""

from __future__ import annotations

import json

from appliance.bench.common import host_cpu, record, write_json
from appliance.bench.report import load, markdown


def test_records_are_stamped_with_the_cpu_and_the_table_shows_it(tmp_path) -> None:
    path = tmp_path / "bench.json"
    write_json(str(path), [record("envs", "snake", [1.0, 3.0, 2.0], env="snake"),
                           {**record("envs", "grid", [5.0]), "cpu": "an older host"}])
    written = json.loads(path.read_text())
    assert [r["cpu"] for r in written] == [host_cpu(), "an older host"]  # a given stamp is kept
    assert host_cpu() and host_cpu() != "unknown"
    assert written[0]["steps_per_second"] == 2.0
    rows = markdown(load([str(path)])).splitlines()
    assert rows[2].endswith(f"3 runs; on {host_cpu()} |") and rows[3].endswith("1 runs; on an older host |")


def test_records_without_a_cpu_render_as_before(tmp_path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps([record("envs", "snake", [1.0])]))  # written before the stamp existed
    assert markdown(load([str(path)])).splitlines()[2].endswith("| 1 runs |")


def test_records_written_beside_busy_cores_say_so(tmp_path) -> None:
    from proc_util import spinners

    from appliance.bench.common import busy_cores

    with busy_cores(1):
        assert len(spinners()) == 1
        write_json(str(tmp_path / "loaded.json"), [record("actors", "pool", [1.0])])
    assert not spinners()
    write_json(str(tmp_path / "quiet.json"), [record("actors", "pool", [1.0])])
    assert json.loads((tmp_path / "loaded.json").read_text())[0]["load"] == "1 core busy"
    assert "load" not in json.loads((tmp_path / "quiet.json").read_text())[0]


def test_autotune_refuses_a_loaded_machine(capsys) -> None:
    from appliance.cli import main

    assert main(["bench", "actors", "--env", "cartpole", "--autotune", "--busy-cores", "1"]) == 2
    assert "--busy-cores" in capsys.readouterr().err
