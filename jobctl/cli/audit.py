"""``jobctl schedule log``: who changed which schedule, when, from what to what."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from jobctl import audit
from jobctl.cli.context import Context, pass_context
from jobctl.cli.parsing import INSTANT
from jobctl.cli.render import console

VALUE_LIMIT = 40


@click.command("log")
@click.argument("schedule_id", required=False)
@click.option("--since", type=INSTANT, help="ISO time, or a duration ago such as 7d.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=audit.DEFAULT_LIMIT)
@click.option("--json", "as_json", is_flag=True, help="Whole rows before and after, as JSON.")
@pass_context
def log(
    context: Context, schedule_id: str | None, since: datetime | None, limit: int, as_json: bool
) -> None:
    """Changes to schedules, newest first: of one row (deleted too) or of all, by the CLI,
    the API or plain SQL."""
    if schedule_id is not None:
        schedule_id = context.filter_schedule_id(schedule_id)
    entries = audit.list_entries(
        context.repository, schedule_id=schedule_id, since=since, limit=limit
    )
    if as_json:
        click.echo(json.dumps([entry.to_json() for entry in entries], ensure_ascii=False))
        return
    console.print(_table(entries))


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 1] + "…"


def _changes(entry: audit.AuditEntry) -> str:
    lines = []
    for column, (before, after) in entry.changes().items():
        if entry.action == "insert":
            lines.append(f"{column} = {_value(after)}")
        elif entry.action == "delete":
            lines.append(f"{column} was {_value(before)}")
        else:
            lines.append(f"{column}: {_value(before)} → {_value(after)}")
    return escape("\n".join(lines))


def _who(entry: audit.AuditEntry) -> str:
    """The actor, and for plain SQL on PostgreSQL the client's application_name."""
    return escape(f"{entry.actor} ({entry.application})" if entry.application else entry.actor)


def _table(entries: Sequence[audit.AuditEntry]) -> Table:
    table = Table(title=f"{len(entries)} change(s)", show_lines=True)
    table.add_column("at (UTC)", no_wrap=True)
    table.add_column("schedule", no_wrap=True)
    table.add_column("action")
    table.add_column("by", overflow="fold")
    table.add_column("changes", overflow="fold")
    for entry in entries:
        table.add_row(
            f"{entry.at:%Y-%m-%d %H:%M:%S}",
            escape(entry.schedule_id),
            entry.action,
            _who(entry),
            _changes(entry),
        )
    return table
