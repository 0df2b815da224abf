"""``jobctl db``, ``jobctl jobs`` and ``jobctl healthcheck``."""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path

import click
from rich.table import Table

from jobctl import errors, migrate, processes, registry
from jobctl.cli import stack
from jobctl.cli.context import Context, pass_context
from jobctl.cli.render import console
from jobctl.prefect.gateway.connection import health_problem, prefect_api_url
from jobctl.settings import DEFAULT_STATE_DIR

GUARDED_ENV = "JOBCTL_UP_GUARDED"


@click.group()
def db() -> None:
    """The jobctl database schema."""


@db.command("upgrade")
@pass_context
def upgrade(context: Context) -> None:
    """Create or complete the tables (safe on a database the original system created)."""
    context.creates_database = True
    before = migrate.current_revision(context.engine)
    taking_over = migrate.holds_unversioned_tables(context.engine)
    migrate.upgrade(context.engine)
    after = migrate.current_revision(context.engine)
    if before == after:
        click.echo(f"database already at revision {after}")
    elif taking_over:
        click.echo(f"database upgraded from the original system's tables to {after}")
    else:
        click.echo(f"database upgraded from {before or 'nothing'} to {after}")


@db.command("current")
@pass_context
def current(context: Context) -> None:
    """Print the applied revision and the newest one."""
    revision = migrate.current_revision(context.engine)
    click.echo(f"current: {revision or 'none'}  head: {migrate.head_revision()}")


@click.command("jobs")
def jobs() -> None:
    """List the registered jobs and their parameters."""
    table = Table(title="registered jobs")
    table.add_column("name", style="bold")
    table.add_column("signature")
    table.add_column("async")
    table.add_column("description")
    for job in registry.load_jobs().values():
        table.add_row(
            job.name, str(inspect.signature(job.fn)), "yes" if job.is_async else "", job.description
        )
    console.print(table)


@click.command("healthcheck")
@pass_context
def healthcheck(context: Context) -> None:
    """Check the database, its migrations and the Prefect API; say how to fix what fails."""
    checks: list[tuple[str, bool, str]] = []
    try:
        context.repository.ping()
        checks.append(("database", True, context.engine.url.render_as_string()))
        head = migrate.head_revision()
        if migrate.is_current(context.engine):
            checks.append(("migrations", True, f"at {head}"))
        else:
            current = migrate.current_revision(context.engine) or "none"
            checks.append(
                ("migrations", False, f"at {current}, need {head}: run `jobctl db upgrade`")
            )
    except errors.MigrationsPending as exc:  # a SQLite file not created yet
        checks.append(("database", False, str(exc)))
    except errors.JobctlError as exc:
        checks.append(("database", False, f"{exc}: check JOBCTL_DATABASE_URL"))
    api_url = prefect_api_url()
    if api_url is None:
        unset = "PREFECT_API_URL is not set: export the one `jobctl up` prints"
        checks.append(("prefect api", False, unset))
    else:
        problem = health_problem(api_url)
        if problem is None:
            checks.append(("prefect api", True, api_url))
        else:
            checks.append(
                (
                    "prefect api",
                    False,
                    f"{api_url} unreachable ({problem}): start it with `jobctl up`",
                )
            )
    table = Table(title="jobctl healthcheck")
    for column in ("check", "ok", "detail"):
        table.add_column(column)
    for name, ok, detail in checks:
        table.add_row(name, "[green]ok[/green]" if ok else "[red]FAIL[/red]", detail)
    console.print(table)
    if not all(ok for _, ok, _ in checks):
        sys.exit(1)


@click.command("up")
@click.option("--no-demo", is_flag=True, help="Do not add demo schedules to an empty table.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    help="Logs, the lock file and the local Prefect server's data.",
)
@click.option("--status-every", type=float, default=15.0, help="Seconds between status lines.")
@pass_context
def up(context: Context, no_demo: bool, state_dir: Path, status_every: float) -> None:
    """Run everything: Prefect server (unless PREFECT_API_URL is set), worker, sync watcher."""
    if os.environ.get(GUARDED_ENV) is None:
        # The stack runs in a child of this process, which ends whatever the stack leaves
        # behind however it ends (even SIGKILL): see processes.run_guarded.
        args = [sys.executable, "-m", "jobctl.cli"]
        args += ["-v"] if context.verbose else []
        args += ["up", "--state-dir", str(state_dir), "--status-every", str(status_every)]
        args += ["--no-demo"] if no_demo else []
        env = {**os.environ, GUARDED_ENV: "1"}
        if context.database_url:
            env["JOBCTL_DATABASE_URL"] = context.database_url
        sys.exit(processes.run_guarded(args, env))
    stack.up(context.settings, demo=not no_demo, state_dir=state_dir, status_every_s=status_every)
