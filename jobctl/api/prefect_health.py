"""Whether Prefect answers and how many workers of the pool are online, cached briefly."""

from __future__ import annotations

import asyncio
import time

import httpx

from jobctl import errors
from jobctl.metrics import PrefectHealth
from jobctl.prefect.gateway.client import connect
from jobctl.prefect.gateway.connection import prefect_api_url

PREFECT_MAX_AGE_S = 15.0
PREFECT_TIMEOUT_S = 3.0


class PrefectHealthCache:
    """Read at most every ``max_age_s``: a scrape must not wait on Prefect each time."""

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
        async with connect() as gateway:
            if await gateway.health_problem() is not None:
                return down
            try:
                workers = await gateway.online_workers(self.pool)
            except (httpx.HTTPError, errors.PrefectUnavailable):
                return down
        return PrefectHealth(pool=self.pool, up=True, workers_online=workers)
