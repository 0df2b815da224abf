"""Where the Prefect API is, as Prefect's own settings say, a client for it, and its health."""

from __future__ import annotations

from typing import Any

import httpx
from prefect.client.orchestration import PrefectClient, get_client
from prefect.settings import get_current_settings

from jobctl import errors
from jobctl.prefect.gateway import tls


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
            "PREFECT_API_URL is not set: export the one `jobctl up` prints "
            "(http://127.0.0.1:4200/api by default), or point it at a Prefect server"
        )
    return url


def prefect_client(**httpx_settings: Any) -> PrefectClient:
    """A client of the configured server (see ``require_prefect_api``)."""
    require_prefect_api()
    tls.install()
    return get_client(httpx_settings=httpx_settings or None)


def health_problem(api_url: str, timeout_s: float = 5.0) -> str | None:
    """Why the Prefect API at ``api_url`` does not answer its health check, or None.

    For callers that hold no client (a server starting, ``jobctl doctor``, ``/health``);
    the others ask ``PrefectGateway.health_problem``, the same endpoint through their client.
    """
    try:
        httpx.get(f"{api_url}/health", timeout=timeout_s).raise_for_status()
    except httpx.HTTPError as exc:
        return str(exc) or type(exc).__name__
    return None
