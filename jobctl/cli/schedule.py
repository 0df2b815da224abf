"""``jobctl schedule``: add, list, show, update, enable, disable and remove JobSchedule rows;
export them to YAML and apply such a file; show who changed them (``log``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

import click

from jobctl import errors, registry, schedules_file, validation
from jobctl.cli import audit, render
from jobctl.cli.context import Context, pass_context
from jobctl.cli.parsing import JSON
from jobctl.fields import SCHEDULE_FIELDS, Field
from jobctl.records import ScheduleSpec

F = TypeVar("F", bound=Callable[..., Any])


def _schedule_options(*, for_update: bool) -> Callable[[F], F]:
    """The options of ``add`` (some required) and ``update`` (all optional, no defaults),
    one per field of ``jobctl.fields`` but ``isActive`` (``--inactive``, enable, disable)."""

    def option(field: Field) -> Callable[[F], F]:
        kind: Any = JSON if field.kind is object else field.kind
        if field.choices:
            kind = click.Choice(field.choices)
        return click.option(
            field.option,
            field.name,
            type=kind,
            default=None,
            required=field.required and not for_update,
            help=field.help,
        )

    def decorate(command: F) -> F:
        for field in reversed(SCHEDULE_FIELDS):
            if field.name != "is_active":
                command = option(field)(command)
        return command

    return decorate


@click.group()
def schedule() -> None:
    """Manage JobSchedule rows (the sync mirrors them into Prefect deployments)."""


@schedule.command("add")
@_schedule_options(for_update=False)
@click.option("--inactive", is_flag=True, help="Add the row disabled.")
@pass_context
def add(context: Context, /, inactive: bool, **fields: Any) -> None:
    """Add a schedule and print its id."""
    given = {name: value for name, value in fields.items() if value is not None}
    spec = validation.validated(ScheduleSpec(is_active=not inactive, **given), registry.job_names())
    row = context.repository.add_schedule(spec)
    click.echo(row.id)


@schedule.command("list")
@click.option("--job", "job_name", help="Only rows of this job.")
@pass_context
def list_(context: Context, job_name: str | None) -> None:
    """List schedules with their next three fire times (in each row's zone)."""
    rows = context.repository.list_schedules()
    if job_name:
        rows = [row for row in rows if row.job_name == job_name]
    render.schedules(rows, context.settings.timezone, at=datetime.now(UTC))


@schedule.command("show")
@click.argument("schedule_id")
@pass_context
def show(context: Context, schedule_id: str) -> None:
    """Show one schedule, its problems if any, and its next three fire times."""
    row = context.repository.get_schedule(context.repository.resolve_schedule_id(schedule_id))
    render.schedule_detail(row, context.settings.timezone, at=datetime.now(UTC))


# ``update --unset``: the fields a row may leave null, by their option's name. Not the
# required ones, ``isActive``, nor those with choices (NOT NULL columns with a default).
_UNSETTABLE = {
    field.option.removeprefix("--"): field.name
    for field in SCHEDULE_FIELDS
    if not field.required and not field.choices and field.name != "is_active"
}


@schedule.command("update")
@click.argument("schedule_id")
@_schedule_options(for_update=True)
@click.option(
    "--unset",
    "unset",
    multiple=True,
    type=click.Choice(sorted(_UNSETTABLE)),
    help="Set this field to null, its default (repeatable): --unset timezone.",
)
@pass_context
def update(context: Context, /, schedule_id: str, unset: tuple[str, ...], **fields: Any) -> None:
    """Change the given fields of a schedule; the others stay."""
    changes = {name: value for name, value in fields.items() if value is not None}
    cleared = {_UNSETTABLE[option]: option for option in unset}
    if both := sorted(option for name, option in cleared.items() if name in changes):
        raise click.UsageError(f"--unset {' '.join(both)}: given a value too")
    changes.update(dict.fromkeys(cleared))  # None: null
    if not changes:
        raise click.UsageError("nothing to change: pass at least one option")
    schedule_id = context.repository.resolve_schedule_id(schedule_id)
    current = context.repository.get_schedule(schedule_id)
    spec = validation.validated(
        current.spec().replace(**changes), registry.job_names(), schedule_id
    )
    context.repository.update_schedule(
        schedule_id, **{name: getattr(spec, name) for name in changes}
    )
    click.echo(f"updated {schedule_id}")


def _set_active(
    context: Context, schedule_id: str | None, job_name: str | None, active: bool
) -> None:
    verb = "enabled" if active else "disabled"
    if (schedule_id is None) == (job_name is None):
        raise click.UsageError("pass a schedule id or --job NAME (not both)")
    if schedule_id is not None:
        schedule_id = context.repository.resolve_schedule_id(schedule_id)
        context.repository.update_schedule(schedule_id, is_active=active)
        click.echo(f"{verb} {schedule_id}")
        return
    ids = [row.id for row in context.repository.list_schedules() if row.job_name == job_name]
    if not ids:
        raise errors.ScheduleNotFound(f"no schedule runs the job {job_name!r}")
    # One transaction: every row of the job changes, or none does.
    context.repository.apply_schedules(updates=[(i, {"is_active": active}) for i in ids])
    click.echo(f"{verb} {len(ids)} schedule(s) of {job_name}")


_JOB_OPTION = click.option("--job", "job_name", help="Every row of this job instead of one id.")


@schedule.command("enable")
@click.argument("schedule_id", required=False)
@_JOB_OPTION
@pass_context
def enable(context: Context, schedule_id: str | None, job_name: str | None) -> None:
    """Resume a schedule, or every schedule of a job (their deployments resume at the
    next sync, unless a maintenance pause is on)."""
    _set_active(context, schedule_id, job_name, True)


@schedule.command("disable")
@click.argument("schedule_id", required=False)
@_JOB_OPTION
@pass_context
def disable(context: Context, schedule_id: str | None, job_name: str | None) -> None:
    """Pause a schedule, or every schedule of a job (their deployments stay, paused)."""
    _set_active(context, schedule_id, job_name, False)


@schedule.command("remove")
@click.argument("schedule_id")
@pass_context
def remove(context: Context, schedule_id: str) -> None:
    """Delete a schedule (its deployment is deleted at the next sync; its history stays)."""
    schedule_id = context.repository.resolve_schedule_id(schedule_id)
    context.repository.delete_schedule(schedule_id)
    click.echo(f"removed {schedule_id}")


schedule.add_command(audit.log)


@schedule.command("export")
@click.option("--job", "job_name", help="Only rows of this job.")
@pass_context
def export(context: Context, job_name: str | None) -> None:
    """Write the rows as YAML (for `schedule apply -f`); warnings go to stderr."""
    rows = context.repository.list_schedules()
    if job_name:
        rows = [row for row in rows if row.job_name == job_name]
    text, warnings = schedules_file.export(rows, registry.job_names())
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(text, nl=False)


@schedule.command("apply")
@click.option("-f", "--file", "path", type=click.File("r"), required=True, help="YAML file.")
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@click.option("--prune", is_flag=True, help="Delete rows absent from the file.")
@click.option("--keep-active-state", is_flag=True, help="Leave isActive of existing rows as it is.")
@pass_context
def apply(
    context: Context, path: TextIO, dry_run: bool, prune: bool, keep_active_state: bool
) -> None:
    """Bring the table to a file of `schedule export`, in one transaction: a file with any
    invalid entry writes nothing; an unchanged file writes nothing."""
    try:
        entries = schedules_file.parse(path.read(), registry.job_names())
    except errors.InvalidSchedulesFile as exc:
        if context.verbose:
            raise
        for problem in exc.problems:
            click.echo(f"error: {path.name}: {problem}", err=True)
        sys.exit(1)
    current = context.repository.list_schedules()
    plan = schedules_file.plan(entries, current, prune=prune, keep_active_state=keep_active_state)
    if not dry_run:
        context.repository.apply_schedules(
            adds=plan.adds(), updates=plan.updates(), deletes=plan.deletes()
        )
    for change in plan.changes:
        if dry_run or change.action is not schedules_file.Action.UNCHANGED:
            click.echo(change.describe(dry_run=dry_run))
    click.echo(f"{'plan (dry run, nothing written)' if dry_run else 'applied'}: {plan.summary()}")
