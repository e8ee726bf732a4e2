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
LAYOUT_KEYS = ("agents", "num_envs", "num_actors", "batch_size", "ranks", "device", "metrics")


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
        "| bench | name | layout | steps/s (median) | runs |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for r in records:
        layout = ", ".join(f"{k}={r[k]}" for k in LAYOUT_KEYS if k in r)
        rate = r.get("steps_per_second")
        shown = f"{rate:,.0f}" if isinstance(rate, (int, float)) else "n/a"
        runs = len(r.get("runs", []))
        lines.append(f"| {r['bench']} | {r['name']} | {layout} | {shown} | {runs} |")
    return "\n".join(lines) + "\n"


def update(readme: str, table: str) -> str:
    """Replaces the text between the markers; the markers must be there exactly once."""
    if readme.count(START) != 1 or readme.count(END) != 1 or readme.index(START) > readme.index(END):
        raise ValueError(f"the README must contain '{START}' and then '{END}' once each")
    head, rest = readme.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{table}{END}{tail}"
