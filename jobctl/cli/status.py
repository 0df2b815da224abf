"""``jobctl status``: one line per schedule, like ``kubectl get cronjobs``."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.markup import escape
from rich.table import Table

from jobctl import status
from jobctl.api.status_schema import StatusOut
from jobctl.cli.context import Context, pass_context
from jobctl.cli.render import console
from jobctl.status import ScheduleStatus

_STATE_STYLE = {
    status.ACTIVE: "green",
    status.PAUSED: "dim",
    status.REJECTED: "red",
    status.MISSED: "red",
}
_OUTCOME_STYLE = {"SUCCESS": "green", "FAILED": "red", "PROCESSING": "yellow"}


def _at(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def _last_run(line: ScheduleStatus) -> str:
    last = line.last
    if last is None:
        return "never"
    style = _OUTCOME_STYLE[last.status.value]
    parts = [_at(last.start_at), f"[{style}]{last.status.value}[/{style}]"]
    if last.attempt is not None and last.attempt > 1:
        parts.append(f"attempt {last.attempt}")
    if last.duration_s is not None:
        parts.append(f"{last.duration_s:.1f}s")
    return " ".join(parts)


def _state(line: ScheduleStatus) -> str:
    style = _STATE_STYLE[line.state]
    text = f"[{style}]{line.state}[/{style}]"
    return text + (f"\n{escape(line.reason)}" if line.reason else "")


@click.command("status")
@click.option("--failing", is_flag=True, help="Only rows whose last run failed or missed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_context
def status_command(context: Context, failing: bool, as_json: bool) -> None:
    """Every schedule: state (active, paused, rejected, missed), last run, last success,
    next fire time."""
    lines = status.read_status(context.settings, context.repository, failing_only=failing)
    pause = context.repository.get_maintenance_or_none()
    if pause is not None and pause.is_on(datetime.now(UTC)):
        # On stderr with --json: standard output stays one schedule per line.
        click.echo(f"MAINTENANCE: {pause.describe()}", err=as_json)
    if as_json:
        for line in lines:
            click.echo(StatusOut.of(line).model_dump_json())
        return
    title = f"{len(lines)} schedule(s)" + (" failing" if failing else "")
    table = Table(title=title)
    table.add_column("id", no_wrap=True)
    table.add_column("job", overflow="fold")
    table.add_column("cron (zone)", overflow="fold")
    table.add_column("state", overflow="fold", max_width=50)
    table.add_column("last run", overflow="fold")
    table.add_column("last success", overflow="fold")
    table.add_column("next fire", overflow="fold")
    for line in lines:
        table.add_row(
            escape(line.schedule_id[:8]),
            escape(line.job_name),
            escape(f"{line.cron} ({line.timezone})"),
            _state(line),
            _last_run(line),
            _at(line.last_success_at),
            _at(line.next_fire_at),
        )
    console.print(table)
