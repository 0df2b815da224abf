"""Where the Prefect API is, as Prefect's own settings say, and a client for it."""

from __future__ import annotations

from typing import Any

import httpx
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings

from jobctl import errors


def prefect_api_url() -> str | None:
    url = get_current_settings().api.url
    return url.rstrip("/") if url else None


def require_prefect_api() -> str:
    """The configured server's URL; never Prefect's in-process ephemeral API.

    The ephemeral API runs no scheduler and no workers: deployments synced into it would
    never run, so a missing ``PREFECT_API_URL`` is an error here.
    """
    url = prefect_api_url()
    if url is None:
        raise errors.PrefectUnavailable(
            "PREFECT_API_URL is not set: start the stack with `jobctl up`, "
            "or point PREFECT_API_URL at a Prefect server"
        )
    return url


def prefect_client(**httpx_settings: Any) -> PrefectClient:
    """A client of the configured server (see ``require_prefect_api``)."""
    require_prefect_api()
    return get_client(httpx_settings=httpx_settings or None)


def health_problem(api_url: str, timeout_s: float = 5.0) -> str | None:
    """Why the Prefect API at ``api_url`` does not answer its health check, or None."""
    try:
        httpx.get(f"{api_url}/health", timeout=timeout_s).raise_for_status()
    except httpx.HTTPError as exc:
        return str(exc) or type(exc).__name__
    return None


async def require_healthy(client: PrefectClient) -> None:
    """``PrefectUnavailable`` unless the client's API answers its health check."""
    problem = await client.api_healthcheck()
    if problem is not None:
        raise errors.PrefectUnavailable(
            f"the Prefect API at {client.api_url} cannot be reached: {problem}"
        )


async def online_workers(client: PrefectClient, pool: str) -> int:
    """How many workers of ``pool`` are online; 0 when the pool does not exist yet.

    ``httpx.HTTPError`` when Prefect cannot answer.
    """
    try:
        workers = await client.read_workers_for_work_pool(
            pool, worker_filter=WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"]))
        )
    except ObjectNotFound:
        return 0
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 404:  # the same, as this call reports it
            return 0
        raise
    return len(workers)
