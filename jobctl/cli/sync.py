"""``jobctl sync``: mirror the JobSchedule rows into Prefect deployments."""

from __future__ import annotations

import asyncio
import sys

import click
from rich.markup import escape
from rich.table import Table

from deployments import sync as schedule_sync
from deployments import watch as schedule_watch
from deployments.plan import Action
from jobctl.cli.context import Context, pass_context
from jobctl.cli.progress import QUIET_OPTION, progress
from jobctl.cli.render import console
from jobctl.prefect.gateway.client import connect


def print_report(report: schedule_sync.SyncReport) -> None:
    counts = report.plan.counts()
    table = Table(title=report.summary())
    table.add_column("action")
    table.add_column("rows", justify="right")
    for action in Action:
        table.add_row(action.value, str(counts[action]))
    console.print(table)
    if report.plan.rejected:
        rejected = Table(title="rejected rows (their deployments are paused)")
        rejected.add_column("schedule", no_wrap=True)
        rejected.add_column("reason", overflow="fold")
        for step in report.plan.rejected:
            rejected.add_row(escape(step.schedule_id), escape(step.reason or ""))
        console.print(rejected)
    if report.failures:
        failed = Table(title="changes Prefect refused")
        for column in ("schedule", "action", "error"):
            failed.add_column(column, overflow="fold")
        for failure in report.failures:
            failed.add_row(
                escape(failure.step.schedule_id), failure.step.action.value, escape(failure.error)
            )
        console.print(failed)


@click.command("sync")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option(
    "--watch",
    is_flag=True,
    help="Keep syncing: on every table change (NOTIFY on PostgreSQL, a change "
    "marker polled on SQLite) and every JOBCTL_FULL_RESYNC_INTERVAL_S.",
)
@QUIET_OPTION
@pass_context
def sync(context: Context, dry_run: bool, watch: bool, quiet: bool) -> None:
    """Mirror every JobSchedule row into a Prefect deployment."""
    if watch:
        if dry_run:
            raise click.UsageError("--watch and --dry-run exclude each other")
        asyncio.run(schedule_watch.watch(context.settings, context.repository))
        return

    async def once() -> schedule_sync.SyncReport:
        async with connect() as gateway:
            with progress("sync: deployment changes", quiet=quiet) as update:
                return await schedule_sync.sync(
                    context.settings, context.repository, gateway, dry_run=dry_run, progress=update
                )

    report = asyncio.run(once())
    print_report(report)
    if not report.ok:
        sys.exit(1)
