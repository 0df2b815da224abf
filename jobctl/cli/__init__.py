"""The ``jobctl`` command line: one entry point, a subcommand per noun."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from jobctl import errors
from jobctl.cli.context import Context

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}

# Each subcommand is imported when it runs: `jobctl history` must not pay for importing
# Prefect's engine and Alembic, which `up`, `sync` and `db` need (seconds per command).
# Its summary, the first paragraph of its help, is here so that `jobctl --help` imports
# none (tests/unit/test_cli_help.py keeps the two the same).
SUBCOMMANDS = {
    "api": "jobctl.cli.api:api",
    "backfill": "jobctl.cli.backfill:backfill",
    "call": "jobctl.cli.api:call",
    "db": "jobctl.cli.admin:db",
    "healthcheck": "jobctl.cli.admin:healthcheck",
    "history": "jobctl.cli.history:history",
    "jobs": "jobctl.cli.admin:jobs",
    "pause": "jobctl.cli.maintenance:pause",
    "resume": "jobctl.cli.maintenance:resume",
    "schedule": "jobctl.cli.schedule:schedule",
    "status": "jobctl.cli.status:status_command",
    "sync": "jobctl.cli.sync:sync",
    "up": "jobctl.cli.admin:up",
}
SUMMARIES = {
    "api": "Serve the HTTP API (OpenAPI at /docs).",
    "backfill": "Run the row's job once per fire time of its cron in [--from, --to), one run each.",
    "call": "Run a job by hand, through Prefect, and print its result (or the run id).",
    "db": "The jobctl database schema.",
    "healthcheck": (
        "Check the database, its migrations and the Prefect API; say how to fix what fails."
    ),
    "history": "Attempts, newest first (one row per attempt of every run).",
    "jobs": "List the registered jobs and their parameters.",
    "pause": "Pause every schedule for maintenance (each row's isActive stays as it is).",
    "resume": (
        "End the maintenance pause: the active rows run again (each catching up once), "
        "the disabled ones stay paused."
    ),
    "schedule": "Manage JobSchedule rows (the sync mirrors them into Prefect deployments).",
    "status": (
        "Every schedule: state (active, paused, rejected, missed), last run, last success, "
        "next fire time."
    ),
    "sync": "Mirror every JobSchedule row into a Prefect deployment.",
    "up": "Run everything: Prefect server (unless PREFECT_API_URL is set), worker, sync watcher.",
}


class JobctlGroup(click.Group):
    """Loads subcommands on use; turns jobctl errors into one line on stderr and exit 1.

    With ``-v`` the traceback is shown instead.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, SUMMARIES[name]) for name in self.list_commands(ctx)])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.JobctlError as exc:
            state = ctx.find_object(Context)
            if state is not None and state.verbose:
                raise
            click.echo(f"error: {_one_line(exc)}", err=True)
            sys.exit(1)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


@click.group(cls=JobctlGroup, context_settings=CONTEXT_SETTINGS)
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


def main() -> None:
    cli(prog_name="jobctl")
