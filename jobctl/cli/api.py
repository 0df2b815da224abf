"""``jobctl api`` and ``jobctl call``."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
from typing import Any

import click
import uvicorn

from flows import registered
from jobctl import errors
from jobctl.api.app import create_app
from jobctl.cli.context import Context, pass_context
from jobctl.cli.parsing import JSON
from jobctl.prefect import manual_runs
from jobctl.prefect.gateway.client import connect

CLI_USER = "cli"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("api")
@click.option("--host", envvar="JOBCTL_API_HOST", show_envvar=True, default=None)
@click.option(
    "--port",
    envvar="JOBCTL_API_PORT",
    show_envvar=True,
    type=click.IntRange(1, 65535),
    default=None,
)
@click.option(
    "--token",
    envvar="JOBCTL_API_TOKEN",
    show_envvar=True,
    default=None,
    help="Bearer token every endpoint but /health requires.",
)
@pass_context
def api(context: Context, host: str | None, port: int | None, token: str | None) -> None:
    """Serve the HTTP API (OpenAPI at /docs)."""
    overrides: dict[str, Any] = {"api_token": token} if token else {}
    settings = context.settings.model_copy(update=overrides)
    host = host or settings.api_host
    if not settings.api_callers and not _is_loopback(host):
        raise errors.JobctlError(
            f"refusing to listen on {host} without a token: set JOBCTL_API_TOKEN "
            "(or --token) or JOBCTL_API_TOKENS, or bind to 127.0.0.1"
        )
    uvicorn.run(create_app(settings), host=host, port=port or settings.api_port)


@click.command("call")
@click.argument("job_name")
@click.option("--param", type=JSON, default=None, help="JSON value the job receives.")
@click.option(
    "--no-wait", is_flag=True, help="Submit a run of <job>/manual to the workers instead."
)
@pass_context
def call(context: Context, job_name: str, param: Any, no_wait: bool) -> None:
    """Run a job by hand, through Prefect, and print its result (or the run id)."""
    if no_wait:

        async def submit() -> str:
            async with connect() as gateway:
                run_id, _ = await manual_runs.submit(
                    job_name, param, CLI_USER, gateway, context.settings.work_pool
                )
                return run_id

        click.echo(asyncio.run(submit()))
        return
    registered.recorder.use_repository(context.repository)
    outcome = manual_runs.run_here(job_name, param, CLI_USER, context.repository)
    click.echo(
        json.dumps(
            {
                "status": outcome.status,
                "result": outcome.result,
                "error": outcome.error,
                "flowRunId": outcome.flow_run_id,
                "historyId": outcome.history_id,
            },
            default=str,
            ensure_ascii=False,
        )
    )
    if outcome.status != "SUCCESS":
        sys.exit(1)
