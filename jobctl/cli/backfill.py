"""``jobctl backfill``: run a schedule's job once per past fire time in a range."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from datetime import datetime

import click

from jobctl import backfill_plan
from jobctl.cli.context import Context, pass_context
from jobctl.cli.parsing import INSTANT
from jobctl.prefect.backfill import Backfill, BackfillRun, execute, plan
from jobctl.prefect.gateway.client import connect

COMPLETED = "Completed"


def _local(moment: datetime) -> str:
    return f"{moment.strftime('%Y-%m-%d %H:%M %Z')}  ({backfill_plan.utc_text(moment)})"


@click.command("backfill")
@click.argument("schedule_id")
@click.option(
    "--from",
    "start",
    type=INSTANT,
    required=True,
    help="First instant of the range, included: ISO time (UTC without an offset) or a "
    "duration ago (2d).",
)
@click.option(
    "--to", "end", type=INSTANT, required=True, help="End of the range, excluded; not after now."
)
@click.option("--dry-run", is_flag=True, help="List the fire times; run nothing.")
@click.option(
    "--max-runs",
    type=click.IntRange(1),
    default=backfill_plan.DEFAULT_MAX_RUNS,
    help="Refuse a range with more fire times than this.",
)
@pass_context
def backfill(
    context: Context,
    schedule_id: str,
    start: datetime,
    end: datetime,
    dry_run: bool,
    max_runs: int,
) -> None:
    """Run the row's job once per fire time of its cron in [--from, --to), one run each.

    Fire times are those the schedule runs, in the row's zone, DST included. Each run is
    a run of the row's deployment, scheduled at its fire time (what the job reads as
    jobctl.runtime.scheduled_time()); a row whose overlap is skip or queue runs them one
    after the other. A fire time already backfilled is not run again, so running the same
    command again resumes a backfill that was stopped. Waits for every run; exits 1 if
    one did not complete.
    """
    work = plan(
        context.repository,
        context.repository.resolve_schedule_id(schedule_id),
        start,
        end,
        default_timezone=context.settings.timezone,
        max_runs=max_runs,
    )
    click.echo(
        f"{len(work.fire_times)} fire time(s) of {work.cron!r} in {work.timezone}, "
        f"{backfill_plan.utc_text(start)} to {backfill_plan.utc_text(end)}"
        + (" (dry run: nothing runs)" if dry_run else f", overlap {work.overlap}")
    )
    if dry_run:
        for fire_time in work.fire_times:
            click.echo(_local(fire_time))
        return
    runs = asyncio.run(_run(work, context))
    states = Counter(run.state for run in runs)
    click.echo(
        f"{len(runs)} run(s): " + ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    )
    if set(states) - {COMPLETED}:
        sys.exit(1)


async def _run(work: Backfill, context: Context) -> list[BackfillRun]:
    def show(run: BackfillRun) -> None:
        click.echo(f"{_local(run.fire_time)}  {run.state}  {run.flow_run_id}")

    async with connect() as gateway:
        return await execute(work, gateway, context.repository, on_run=show)
