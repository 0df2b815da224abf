"""Moved to the Prefect boundary (``jobctl.prefect_gateway``): kept while callers move.

New code opens a gateway with ``jobctl.prefect_gateway.client.connect`` and takes the
URL helpers from ``jobctl.prefect_gateway.connection``.
"""

from __future__ import annotations

import httpx
from prefect.client.orchestration import PrefectClient

from jobctl import errors
from jobctl.prefect_gateway.client import ClientGateway
from jobctl.prefect_gateway.connection import (
    health_problem,
    prefect_api_url,
    prefect_client,
    require_prefect_api,
)

__all__ = [
    "health_problem",
    "online_workers",
    "prefect_api_url",
    "prefect_client",
    "require_healthy",
    "require_prefect_api",
]


async def require_healthy(client: PrefectClient) -> None:
    await ClientGateway(client).require_healthy()


async def online_workers(client: PrefectClient, pool: str) -> int:
    """As before the boundary: ``httpx.HTTPError`` when Prefect cannot answer."""
    try:
        return await ClientGateway(client).online_workers(pool)
    except errors.PrefectUnavailable as exc:
        if isinstance(exc.__cause__, httpx.HTTPError):
            raise exc.__cause__ from None
        raise
