"""``jobctl pause --all`` and ``jobctl resume --all``: the maintenance pause.

A flag of its own (``jobctl.maintenance``), not ``isActive``: resuming restores exactly
the rows that were active. The sync applies it (the watcher at once).
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from jobctl import errors, maintenance
from jobctl.cli.context import Context, pass_context

_ALL_HELP = "Every schedule (required: the pause covers the whole table)."


def _require_all(every: bool) -> None:
    if not every:
        raise click.UsageError(
            "pass --all: a maintenance pause covers every schedule "
            "(one job's rows: jobctl schedule disable --job NAME)"
        )


def _checked_reason(_ctx: click.Context, _param: click.Parameter, reason: str) -> str:
    try:
        return maintenance.checked_reason(reason)
    except errors.InvalidInput as exc:
        raise click.BadParameter(str(exc)) from None


def _parsed_until(
    _ctx: click.Context, _param: click.Parameter, text: str | None
) -> datetime | None:
    try:
        return None if text is None else maintenance.parse_until(text, datetime.now(UTC))
    except errors.InvalidInput as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("pause")
@click.option("--all", "every", is_flag=True, help=_ALL_HELP)
@click.option(
    "--reason",
    required=True,
    callback=_checked_reason,
    help="Why: shown by status, `up` and /health.",
)
@click.option(
    "--until",
    callback=_parsed_until,
    help="End it by itself: an ISO-8601 time (UTC unless it says) or a duration "
    "from now (90s, 15m, 2h, 1d).",
)
@pass_context
def pause(context: Context, every: bool, reason: str, until: datetime | None) -> None:
    """Pause every schedule for maintenance (each row's isActive stays as it is)."""
    _require_all(every)
    pause_on = context.repository.start_maintenance(
        reason=reason, set_by=context.actor, until=until, now=datetime.now(UTC)
    )
    click.echo(pause_on.describe())
    click.echo("the sync pauses every deployment; `jobctl resume --all` ends it")


@click.command("resume")
@click.option("--all", "every", is_flag=True, help=_ALL_HELP)
@pass_context
def resume(context: Context, every: bool) -> None:
    """End the maintenance pause: the active rows run again (each catching up once),
    the disabled ones stay paused."""
    _require_all(every)
    ended = context.repository.end_maintenance(ended_by=context.actor, now=datetime.now(UTC))
    if ended is None:
        click.echo("no maintenance pause was on")
        return
    rows = context.repository.list_schedules()
    active = sum(row.is_active is True for row in rows)
    click.echo(
        f"maintenance pause ended (it began {ended.started_at:%Y-%m-%d %H:%M:%S} UTC): "
        f"{active} active schedule(s) resume at the next sync, "
        f"{len(rows) - active} stay disabled"
    )
