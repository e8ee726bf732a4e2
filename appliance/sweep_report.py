"""`appliance sweep report NAME`: the best trials as a table, every trial as CSV, and a PNG of the sweep.

The plot has one panel per swept key (mean return against the key's value,
pruned trials hollow) and one of mean return against wall time with the
Pareto front (no other trial is both better and faster) drawn through it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from rich.table import Table

from . import sweep, sweep_space


def open_sweep(name: str, storage: str | None) -> tuple[Any, list[sweep_space.Param], dict[str, Any]]:
    """The study, its space and its stored identity; one sentence if there is no such sweep."""
    optuna = sweep._need_optuna()
    url = storage or sweep.default_storage(name)
    if storage is None and not (sweep.sweep_dir(name) / "sweep.db").exists():
        raise ValueError(f"no sweep '{name}' in {sweep.sweep_dir(name)} (pass --storage URL for one kept elsewhere)")
    store = sweep.open_storage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)]
    if name not in names:
        raise ValueError(f"no sweep '{name}' in {sweep.redact(url)} (it holds: {', '.join(names) or 'none'})")
    study = optuna.load_study(study_name=name, storage=store)
    identity = study.user_attrs.get("appliance")
    if identity is None:
        raise ValueError(f"sweep '{name}' in {sweep.redact(url)} is an Optuna study the appliance did not create")
    params = [sweep_space.Param(d["key"], d["kind"], d.get("low"), d.get("high"), tuple(d.get("choices", ())))
              for d in identity["space"]]
    return study, params, identity


def rows(study: Any, params: list[sweep_space.Param]) -> list[dict[str, Any]]:
    """One row per trial, in trial order: number, state, return, wall time, the swept values, where it ran."""
    out = []
    retried = {t.system_attrs.get("failed_trial"): t.number for t in study.get_trials(deepcopy=False)
               if t.system_attrs.get("failed_trial") is not None}
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        value = attrs.get("mean_return")
        if value is None and t.values:
            value = t.values[0]
        row: dict[str, Any] = {
            "trial": t.number,
            "state": t.state.name.lower(),
            "mean_return": value,
            "wall_seconds": attrs.get("wall_seconds"),
            "first_step_seconds": attrs.get("first_step_seconds"),
            "agent_steps": attrs.get("agent_steps"),
            "outcome": attrs.get("outcome"),
            "retry_of": t.system_attrs.get("failed_trial"),
            "retried_as": retried.get(t.number),
            "failure": attrs.get("failure"),
            "run_dir": attrs.get("run_dir"),
        }
        for p in params:
            row[p.key] = t.params.get(p.key)
        out.append(row)
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def table(name: str, all_rows: list[dict[str, Any]], params: list[sweep_space.Param], top: int) -> Table:
    """The ``top`` complete trials by mean return (ties: the faster first)."""
    done = [r for r in all_rows if r["state"] == "complete" and r["mean_return"] is not None]
    done.sort(key=lambda r: (-r["mean_return"], r["wall_seconds"] or math.inf))
    states: dict[str, int] = {}
    for r in all_rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    caption = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    out = Table(title=f"sweep {name}: best {min(top, len(done))} of {len(all_rows)} trials", caption=caption)
    for column in ("trial", "mean return", "wall s", *[p.key for p in params], "run dir"):
        out.add_column(column, justify="left" if column == "run dir" else "right")
    for r in done[:top]:
        out.add_row(str(r["trial"]), _fmt(r["mean_return"]), _fmt(r["wall_seconds"]),
                    *[_fmt(r[p.key]) for p in params], r["run_dir"] or "-")
    return out


def write_csv(all_rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(all_rows[0]) if all_rows else ["trial"])
        writer.writeheader()
        writer.writerows(all_rows)
    tmp.replace(path)


def pareto(points: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """(wall, return, trial) points no other point beats on both: faster and at least as good, or better."""
    front, best = [], -math.inf
    for wall, ret, number in sorted(points, key=lambda p: (p[0], -p[1])):
        if ret > best:
            front.append((wall, ret, number))
            best = ret
    return front


def plot(name: str, all_rows: list[dict[str, Any]], params: list[sweep_space.Param], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    shown = [r for r in all_rows if r["state"] in ("complete", "pruned") and r["mean_return"] is not None]
    panels = len(params) + 1
    cols = min(3, panels)
    rows_n = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.4 * rows_n), squeeze=False)
    flat = [a for row in axes for a in row]
    for ax, p in zip(flat, params, strict=False):
        for state, style in (("complete", {"color": "tab:blue"}),
                             ("pruned", {"facecolors": "none", "edgecolors": "tab:gray"})):
            pts = [r for r in shown if r["state"] == state and r[p.key] is not None]
            if p.kind == "categorical":
                xs = [list(p.choices).index(r[p.key]) for r in pts]
            else:
                xs = [r[p.key] for r in pts]
            ax.scatter(xs, [r["mean_return"] for r in pts], label=state, s=28, **style)
        if p.kind == "categorical":
            ax.set_xticks(range(len(p.choices)), [str(c) for c in p.choices])
        if p.kind == "log_uniform":
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # 3x10^-3 labels collide
        ax.set_xlabel(p.key)
        ax.set_ylabel("mean return")
        ax.grid(alpha=0.3)
    flat[0].legend(fontsize=8)
    ax = flat[len(params)]
    timed = [r for r in shown if r["wall_seconds"] is not None]
    for state, style in (("complete", {"color": "tab:blue"}),
                         ("pruned", {"facecolors": "none", "edgecolors": "tab:gray"})):
        pts = [r for r in timed if r["state"] == state]
        ax.scatter([r["wall_seconds"] for r in pts], [r["mean_return"] for r in pts], s=28, label=state, **style)
    front = pareto([(r["wall_seconds"], r["mean_return"], r["trial"]) for r in timed if r["state"] == "complete"])
    if front:
        ax.step([f[0] for f in front], [f[1] for f in front], where="post", color="tab:red", label="Pareto front")
        for wall, ret, number in front:
            ax.annotate(str(number), (wall, ret), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("wall seconds per trial")
    ax.set_ylabel("mean return")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    for extra in flat[panels:]:
        extra.axis("off")
    fig.suptitle(f"sweep {name}: {len(shown)} trials")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(name: str, storage: str | None, top: int, out_dir: str | None, console: Any) -> dict[str, Path]:
    """Prints the table and writes ``report.csv`` and ``report.png`` (into the sweep's directory by default)."""
    study, params, _ = open_sweep(name, storage)
    all_rows = rows(study, params)
    console.print(table(name, all_rows, params, top), highlight=False)
    where = Path(out_dir) if out_dir else sweep.sweep_dir(name)
    csv_path, png_path = where / "report.csv", where / "report.png"
    write_csv(all_rows, csv_path)
    plot(name, all_rows, params, png_path)
    console.print(f"wrote {csv_path} and {png_path}", highlight=False)
    return {"csv": csv_path, "png": png_path}
