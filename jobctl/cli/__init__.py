"""The ``jobctl`` command line: one entry point, a subcommand per noun."""

from __future__ import annotations

import sys
from typing import Any

import click
from pydantic import ValidationError

from jobctl import errors
from jobctl.cli import admin, api, history, schedule, sync
from jobctl.cli.context import Context

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}


class ErrorReportingGroup(click.Group):
    """Turns jobctl errors into one line on stderr and exit code 1 (traceback with ``-v``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (errors.JobctlError, ValidationError) as exc:  # a bad param too
            state = ctx.find_object(Context)
            if state is not None and state.verbose:
                raise
            click.echo(f"error: {_one_line(exc)}", err=True)
            sys.exit(1)


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        if exc.title == "Settings":
            return f"invalid setting JOBCTL_{where.upper()}: {first['msg']}"
        return f"param does not fit the job ({where or 'value'}): {first['msg']}"
    return " ".join(str(exc).split())


@click.group(cls=ErrorReportingGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--database-url",
    envvar="JOBCTL_DATABASE_URL",
    show_envvar=True,
    default=None,
    help="Database of the JobSchedule/JobHistory tables [default: sqlite:///.jobctl/jobctl.db].",
)
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, verbose: bool) -> None:
    """jobctl: a JobSchedule table mirrored into Prefect deployments, every attempt recorded."""
    ctx.obj = Context(database_url=database_url, verbose=verbose)
    ctx.call_on_close(ctx.obj.close)


cli.add_command(admin.db)
cli.add_command(admin.jobs)
cli.add_command(admin.healthcheck)
cli.add_command(schedule.schedule)
cli.add_command(history.history)
cli.add_command(sync.sync)
cli.add_command(admin.up)
cli.add_command(api.api)
cli.add_command(api.call)


def main() -> None:
    cli(prog_name="jobctl")
