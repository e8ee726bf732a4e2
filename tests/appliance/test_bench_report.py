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
