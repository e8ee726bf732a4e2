"""`appliance bench report`: renders benchmark JSON records as the README's markdown table.

The README's table sits between two markers and is regenerated from the JSON
files that `appliance bench ... --json` wrote, so no figure is typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
LAYOUT_KEYS = (
    "agents", "num_envs", "num_actors", "batch_size", "order", "preset", "pool", "policy", "metrics", "ranks",
    "device", "load", "layout",
)


def load(paths: list[str]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list) or not all(isinstance(r, dict) and "bench" in r for r in data):
            raise ValueError(f"{path} holds no `appliance bench` records")
        records.extend(data)
    return records


def markdown(records: list[dict[str, Any]]) -> str:
    lines = [
        "| bench | name | env | layout | median | notes |",
        "| --- | --- | --- | --- | ---: | --- |",
    ]
    for r in records:
        layout = ", ".join(f"{k}={r[k]}" for k in LAYOUT_KEYS if k in r)
        lines.append(f"| {r['bench']} | {r['name']} | {r.get('env', '')} | {layout} | {_value(r)} | {_notes(r)} |")
    return "\n".join(lines) + "\n"


def _value(r: dict[str, Any]) -> str:
    if "overhead_ratio" in r:
        return f"{r['overhead_ratio']:+.1%}"
    rate = r.get("steps_per_second")
    if not isinstance(rate, (int, float)):
        return "n/a"
    unit = r.get("unit", "steps/s")
    if unit == "ratio":
        return f"{rate:.1%}"
    if unit == "s":
        return f"{rate:.3g} s"
    return f"{rate:,.0f} {unit}"


def _notes(r: dict[str, Any]) -> str:
    notes = []
    if r.get("skipped"):
        notes.append(f"left out: {r['skipped']}")
    if r.get("seconds_to_target") is not None:
        notes.append(f"{r['seconds_to_target']:.1f} s to return {r.get('target_return', 475):g}")
    if "reached_target" in r:
        notes.append(f"reached {r['reached_target']}")
    if "cpu_ns_per_step" in r:
        notes.append(f"{r['cpu_ns_per_step']:.0f} CPU ns/step")
    if "speedup_steps_per_second" in r:
        notes.append(f"first row / this: {r['speedup_steps_per_second']:.1f}x steps/s")
    if "ratio_to_pool" in r:
        notes.append(f"/ pool alone: {r['ratio_to_pool']:.3g}")
    for key, peer in (("vs_subproc", "SB3 SubprocVecEnv"), ("vs_dummy", "SB3 DummyVecEnv"),
                      ("vs_before", "before"), ("ratio_to_local", "local pool")):
        if isinstance(r.get(key), (int, float)):
            notes.append(f"/ {peer}: {r[key]:.2f}x")
    if isinstance(r.get("split"), dict) and "learn" in r["split"]:
        notes.append("wall: " + ", ".join(f"{k.replace('_', ' ')} {v:.0%}" for k, v in r["split"].items()))
    if "phase_fraction" in r:
        notes.append("time: " + ", ".join(f"{k} {v:.0%}" for k, v in r["phase_fraction"].items()))
    if "gain_over_random" in r:
        gain = r["gain_over_random"]
        notes.append(f"{r.get('wall_seconds', 0):.0f} s: mean return "
                     + ("n/a" if r["mean_return"] is None else f"{r['mean_return']:.2f}")
                     + f", random policy {r['random_return']:.2f}"
                     + ("" if gain is None else f", gain {gain:+.2f}"))
        if r.get("reward_per_step") is not None:
            notes.append(f"reward/step {r['reward_per_step']:.4g} (random {r['random_reward_per_step']:.4g})")
    if r.get("overrides"):
        notes.append("with " + " ".join(r["overrides"]))
    if "runs" in r and "overhead_ratio" not in r:
        notes.append(f"{len(r['runs'])} runs")
    if r.get("cpu"):
        notes.append(f"on {r['cpu']}")
    return "; ".join(notes)


def update(readme: str, table: str) -> str:
    """Replaces the text between the markers; the markers must be there exactly once."""
    if readme.count(START) != 1 or readme.count(END) != 1 or readme.index(START) > readme.index(END):
        raise ValueError(f"the README must contain '{START}' and then '{END}' once each")
    head, rest = readme.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{table}{END}{tail}"
