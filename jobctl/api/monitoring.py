"""Monitoring endpoints: ``GET /metrics`` (Prometheus) and ``GET /v1/job/status``."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import httpx
from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from jobctl import status
from jobctl.api.status_schema import StatusOut
from jobctl.metrics import CONTENT_TYPE, MetricsSource, PrefectHealth
from jobctl.prefect_api import online_workers, prefect_api_url, prefect_client
from jobctl.repository import Repository
from jobctl.settings import Settings

PREFECT_MAX_AGE_S = 15.0
PREFECT_TIMEOUT_S = 3.0


class PrefectHealthCache:
    """Whether Prefect answers and how many workers of the pool are online, read at most
    every ``max_age_s`` (a scrape must not wait on Prefect each time)."""

    def __init__(self, pool: str, max_age_s: float = PREFECT_MAX_AGE_S) -> None:
        self.pool = pool
        self.max_age_s = max_age_s
        self._value: PrefectHealth | None = None
        self._read_at = float("-inf")

    async def read(self) -> PrefectHealth | None:
        if prefect_api_url() is None:
            return None
        if time.monotonic() - self._read_at < self.max_age_s:
            return self._value
        try:
            self._value = await asyncio.wait_for(self._fetch(), PREFECT_TIMEOUT_S)
        except TimeoutError:  # a hung Prefect must not hang the scrape
            self._value = PrefectHealth(pool=self.pool, up=False, workers_online=None)
        self._read_at = time.monotonic()
        return self._value

    async def _fetch(self) -> PrefectHealth:
        down = PrefectHealth(pool=self.pool, up=False, workers_online=None)
        async with prefect_client() as client:
            if await client.api_healthcheck() is not None:
                return down
            try:
                workers = await online_workers(client, self.pool)
            except httpx.HTTPError:
                return down
        return PrefectHealth(pool=self.pool, up=True, workers_online=workers)


def router(settings: Settings, repository: Repository) -> APIRouter:
    routes = APIRouter()
    source = MetricsSource(repository)
    prefect_health = PrefectHealthCache(settings.work_pool)

    @routes.get(
        "/metrics",
        tags=["monitoring"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
    )
    async def metrics() -> Response:
        """Per job and schedule: attempts, failed runs, missed runs, last success; per job:
        duration and memory histograms; schedules by state; the sync; workers online."""
        prefect = await prefect_health.read()
        text = await run_in_threadpool(source.scrape, None, prefect)
        return Response(text, media_type=CONTENT_TYPE)

    @routes.get("/v1/job/status", tags=["monitoring"])
    def schedule_status(
        failing: Annotated[
            bool, Query(description="Only rows whose last run failed or missed")
        ] = False,
    ) -> list[StatusOut]:
        """One line per schedule: state, last run, last success, next fire time."""
        lines = status.read_status(settings, repository, failing_only=failing)
        return [StatusOut.of(line) for line in lines]

    return routes
