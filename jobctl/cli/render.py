"""Rich tables for schedules and history attempts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from jobctl import registry, validation
from jobctl.cron import next_fire_times
from jobctl.fields import SCHEDULE_FIELDS
from jobctl.records import Attempt, InvalidJson, Schedule

# Every text that comes from a row goes through ``escape``: rich reads ``[...]`` as markup,
# and a description such as ``[/]`` would otherwise fail the whole table.
# Wide when piped, so tables stay readable in logs and CI output.
console = Console(width=None if sys.stdout.isatty() else 160)


def _cell(value: Any, limit: int = 60) -> str:
    """A row's text for a table cell: cut to ``limit`` (one bad row must not flood or
    squeeze the table; ``show`` prints more), NUL made visible, markup escaped."""
    text = str(value).replace("\x00", "\\x00")
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


def _compact_json(value: Any, limit: int = 40) -> str:
    if isinstance(value, InvalidJson):
        text = f"(not JSON) {value.text}"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False)
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


def _next_runs(row: Schedule, default_zone: str, at: datetime) -> str:
    problems = validation.id_problems(row.id) + validation.problems_of(row, registry.job_names())
    if problems:
        return "[red]invalid: " + escape("; ".join(str(p) for p in problems)) + "[/red]"
    zone = row.timezone or default_zone
    times = next_fire_times(row.cron, zone, at)
    return "\n".join(t.strftime("%Y-%m-%d %H:%M %Z") for t in times)


def schedules(rows: Sequence[Schedule], default_zone: str, at: datetime) -> None:
    table = Table(title=f"{len(rows)} schedule(s)", show_lines=True)
    table.add_column("id", no_wrap=True)
    for column in ("job", "cron", "zone", "active", "prio", "timeout ms", "retries"):
        table.add_column(column, overflow="fold")
    table.add_column("next runs", no_wrap=True, max_width=40, overflow="ellipsis")
    table.add_column("param / description", overflow="fold")
    for row in rows:
        table.add_row(
            _cell(row.id, limit=40),
            _cell(row.job_name),
            _cell(row.cron),
            _cell(row.timezone or default_zone),
            "yes" if row.is_active else "no",
            "" if row.priority is None else str(row.priority),
            "" if not row.timeout_ms else str(row.timeout_ms),
            "" if row.max_retries is None else str(row.max_retries),
            _next_runs(row, default_zone, at),
            "\n".join(filter(None, [_compact_json(row.param), _cell(row.description or "")])),
        )
    console.print(table)


def schedule_detail(row: Schedule, default_zone: str, at: datetime) -> None:
    table = Table(show_header=False, title=f"schedule {_cell(row.id, limit=2_000)}")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    names = [field.name for field in SCHEDULE_FIELDS if field.name != "param"]
    for name in [*names, "created_at", "updated_at"]:
        value = getattr(row, name)
        table.add_row(name, "" if value is None else _cell(value, limit=2_000))
    table.add_row("param", _compact_json(row.param, limit=2_000))
    table.add_row("next runs", _next_runs(row, default_zone, at))
    console.print(table)


def _duration(attempt: Attempt) -> str:
    seconds = attempt.duration_s
    return "" if seconds is None else f"{seconds:.1f}s"


def _memory(attempt: Attempt) -> str:
    if attempt.peak_memory_bytes is None:
        return ""
    return f"{attempt.peak_memory_bytes / 2**20:.0f} MiB"


_STATUS_STYLE = {"SUCCESS": "green", "FAILED": "red", "PROCESSING": "yellow"}


def attempts(rows: Sequence[Attempt]) -> None:
    table = Table(title=f"{len(rows)} attempt(s), newest first")
    for column in ("id", "job", "schedule", "attempt", "status", "started (UTC)", "duration"):
        table.add_column(column, overflow="fold")
    table.add_column("peak mem")
    table.add_column("error", overflow="fold", max_width=60)
    for row in rows:
        style = _STATUS_STYLE[row.status.value]
        table.add_row(
            str(row.id),
            escape(row.job_name),
            escape((row.schedule_id or "manual")[:8]) + (" backfill" if row.origin else ""),
            "" if row.attempt is None else str(row.attempt),
            f"[{style}]{row.status.value}[/{style}]",
            row.start_at.strftime("%Y-%m-%d %H:%M:%S"),
            _duration(row),
            _memory(row),
            escape(row.error.splitlines()[0]) if row.error else "",
        )
    console.print(table)


def attempt_detail(row: Attempt) -> None:
    table = Table(show_header=False, title=f"attempt {row.id}")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("job", escape(row.job_name))
    table.add_row("status", row.status.value)
    table.add_row("schedule", escape(row.schedule_id or "manual"))
    table.add_row("flow run", escape(row.flow_run_id or ""))
    if row.origin:
        table.add_row("origin", escape(row.origin))
    table.add_row("attempt", "" if row.attempt is None else str(row.attempt))
    table.add_row("started", row.start_at.isoformat())
    table.add_row("ended", row.end_at.isoformat() if row.end_at else "")
    table.add_row("duration", _duration(row))
    table.add_row("peak memory", _memory(row))
    table.add_row("param", _compact_json(row.param, limit=2_000))
    console.print(table)
    if row.error:
        console.print("[bold]error[/bold]")
        console.print(row.error, markup=False, highlight=False)
