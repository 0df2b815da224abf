"""A dead man's switch for jobctl itself: ``JOBCTL_HEARTBEAT_URL`` is pinged only while the
database, Prefect and at least one worker of the pool are healthy.

If Prefect or the watcher is down, Prefect cannot send alerts; an outside service
(healthchecks.io, Cronitor, Uptime Kuma: "alert when no ping came for N minutes") can.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

from jobctl import errors
from jobctl.prefect.gateway import PrefectGateway
from jobctl.repository import Repository
from jobctl.settings import Settings

logger = logging.getLogger("jobctl.prefect.heartbeat")

PING_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Beat:
    pinged: bool
    problem: str | None = None  # why it did not ping


async def health_problem(
    settings: Settings, repository: Repository, gateway: PrefectGateway
) -> str | None:
    """What is unhealthy, or None: the database, the Prefect API, the pool's workers."""
    try:
        repository.ping()
    except errors.JobctlError as exc:
        return f"database: {exc}"
    failure = await gateway.health_problem()
    if failure is not None:
        return f"Prefect API: {failure}"
    try:
        workers = await gateway.online_workers(settings.work_pool)
    except (httpx.HTTPError, errors.PrefectUnavailable) as exc:
        return f"workers of pool {settings.work_pool!r}: {exc}"
    if not workers:
        return f"no worker of pool {settings.work_pool!r} is online"
    return None


async def beat(settings: Settings, repository: Repository, gateway: PrefectGateway) -> Beat:
    """Ping the heartbeat URL if everything is healthy (no URL set: nothing to do)."""
    if settings.heartbeat_url is None:
        return Beat(pinged=False, problem="JOBCTL_HEARTBEAT_URL is not set")
    try:
        problem = await health_problem(settings, repository, gateway)
    except (httpx.HTTPError, errors.PrefectUnavailable) as exc:  # Prefect unreachable mid-check
        problem = f"Prefect API: {exc}"
    if problem is not None:
        logger.warning("heartbeat withheld: %s", problem)
        return Beat(pinged=False, problem=problem)
    try:
        async with httpx.AsyncClient(timeout=PING_TIMEOUT_S) as http:
            (await http.get(settings.heartbeat_url)).raise_for_status()
    except httpx.HTTPError as exc:
        logger.warning("heartbeat ping failed: %s", exc)
        return Beat(pinged=False, problem=f"ping failed: {exc}")
    return Beat(pinged=True)
