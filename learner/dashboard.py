"""Training progress for people: a live rich dashboard on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


class Reporter:
    """Shows the latest metrics: live when stdout is a TTY, else one line every ``every`` seconds."""

    def __init__(
        self, total_steps: int, every: float = 2.0, console: Console | None = None, live: bool | None = None
    ) -> None:
        self.console = console or Console()
        self.live_mode = sys.stdout.isatty() if live is None else live
        self.every = every
        self.last = 0.0
        self.total = total_steps
        self.live: Live | None = None
        if self.live_mode:
            self.progress = Progress(
                TextColumn("[bold]training"),
                BarColumn(),
                TextColumn("{task.completed:,}/{task.total:,} agent steps"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.progress.add_task("train", total=total_steps)
            self.live = Live(console=self.console, refresh_per_second=4, transient=False)
            self.live.start()

    def update(self, metrics: dict[str, Any], force: bool = False) -> None:
        now = time.monotonic()
        if self.live is not None:
            self.progress.update(self.task, completed=min(metrics["agent_steps"], self.total))
            table = Table(show_header=False, box=None)
            for key, value in metrics.items():
                table.add_row(key, _fmt(value))
            self.live.update(Group(table, self.progress))
        elif force or now - self.last >= self.every:
            keys = (
                "update",
                "agent_steps",
                "steps_per_second",
                "mean_return",
                "mean_length",
                "pg_loss",
                "v_loss",
                "entropy",
                "approx_kl",
                "env_s",
                "inference_s",
                "learn_s",
                "other_s",
            )
            self.console.print(
                " ".join(f"{k}={_fmt(metrics[k])}" for k in keys if k in metrics),
                highlight=False,
                soft_wrap=True,
            )
            self.last = now

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
