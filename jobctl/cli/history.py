"""``jobctl history``: read and purge JobHistory attempts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from jobctl import audit, errors
from jobctl.cli import render
from jobctl.cli.context import Context, pass_context
from jobctl.cli.parsing import DURATION, INSTANT
from jobctl.cli.progress import QUIET_OPTION, progress
from jobctl.models import JobStatus
from jobctl.records import HistoryFilter
from jobctl.repository import Repository

if TYPE_CHECKING:
    from jobctl.prefect.reconciler import ReconcileReport


@click.group(invoke_without_command=True)
@click.option("--job", "job_name", help="Only attempts of this job.")
@click.option("--status", type=click.Choice([s.value for s in JobStatus], case_sensitive=False))
@click.option("--schedule", "schedule_id", help="Only attempts of this schedule id.")
@click.option("--since", type=INSTANT, help="ISO time, or a duration ago such as 24h.")
@click.option("--until", type=INSTANT, help="ISO time, or a duration ago.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50)
@click.option("--offset", type=click.IntRange(0), default=0)
@click.pass_context
def history(
    ctx: click.Context,
    job_name: str | None,
    status: str | None,
    schedule_id: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> None:
    """Attempts, newest first (one row per attempt of every run)."""
    if ctx.invoked_subcommand is not None:
        return
    context = ctx.find_object(Context)
    assert context is not None
    repository = context.repository
    if schedule_id is not None:
        schedule_id = context.filter_schedule_id(schedule_id)
    query = HistoryFilter(
        job_name=job_name,
        status=JobStatus(status.upper()) if status else None,
        schedule_id=schedule_id,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    attempts = repository.list_history(query)
    if not attempts and schedule_id is not None and not _names_a_schedule(repository, schedule_id):
        raise errors.ScheduleNotFound(
            f"no schedule has the id {schedule_id!r}, and no attempt names it"
        )
    render.attempts(attempts)


def _names_a_schedule(repository: Repository, schedule_id: str) -> bool:
    """A row has this id, or an attempt of a deleted row does."""
    if repository.get_schedule_or_none(schedule_id) is not None:
        return True
    return bool(repository.list_history(HistoryFilter(schedule_id=schedule_id, limit=1)))


@history.command("show")
@click.argument("history_id", type=int)
@pass_context
def show(context: Context, history_id: int) -> None:
    """One attempt with its whole error."""
    render.attempt_detail(context.repository.get_attempt(history_id))


@history.command("purge")
@click.option(
    "--older-than",
    type=DURATION,
    default=None,
    help="Age such as 30d [default: JOBCTL_HISTORY_RETENTION_DAYS].",
)
@QUIET_OPTION
@pass_context
def purge(context: Context, older_than: timedelta | None, quiet: bool) -> None:
    """Delete attempts older than the retention, in short batches, and changes in the
    schedules' audit trail older than theirs (JOBCTL_AUDIT_RETENTION_DAYS)."""
    if older_than is None:
        older_than = timedelta(days=context.settings.history_retention_days)
    cutoff = datetime.now(UTC) - older_than
    total = context.repository.count_history_before(cutoff)
    with progress("purge", quiet=quiet, unit="attempts") as update:
        update(0, total)
        purged = context.repository.purge_history(
            cutoff, on_batch=lambda done: update(done, max(total, done))
        )
    click.echo(f"purged {purged} attempt(s) started before {cutoff:%Y-%m-%d %H:%M:%S} UTC")
    audit_cutoff = datetime.now(UTC) - timedelta(days=context.settings.audit_retention_days)
    changes = audit.purge(context.repository, audit_cutoff)
    click.echo(
        f"purged {changes} schedule change(s) of the audit trail made before "
        f"{audit_cutoff:%Y-%m-%d %H:%M:%S} UTC"
    )


@history.command("reconcile")
@pass_context
def reconcile(context: Context) -> None:
    """Close attempts from Prefect's record: finished runs, dead runs, missed history."""
    from jobctl.prefect import reconciler  # Prefect's client: only this subcommand needs it
    from jobctl.prefect.gateway.client import connect

    async def once() -> ReconcileReport:
        async with connect() as gateway:
            return await reconciler.reconcile_with_settings(
                context.settings, context.repository, gateway
            )

    click.echo(asyncio.run(once()).summary())
