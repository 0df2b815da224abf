"""What the sync watcher does every minute besides syncing: find, record and alert missed
runs (``missed_runs.tick``), and ping the heartbeat URL while healthy (``heartbeat.beat``).

Each part runs on its own: a failure of one is logged and does not stop the other, nor
the next round.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from jobctl.prefect import heartbeat, missed_runs
from jobctl.prefect.gateway import Connect
from jobctl.prefect.gateway.client import connect as connect_prefect
from jobctl.repository import Repository
from jobctl.settings import Settings

logger = logging.getLogger("jobctl.prefect.monitor")

INTERVAL_S = 60.0


@dataclass(frozen=True)
class RoundReport:
    missed: missed_runs.TickReport | None
    beat: heartbeat.Beat | None


async def one_round(
    settings: Settings, repository: Repository, connect: Connect = connect_prefect
) -> RoundReport:
    tick: missed_runs.TickReport | None = None
    beat: heartbeat.Beat | None = None
    async with connect() as gateway:
        try:
            tick = await missed_runs.tick(settings, repository, gateway)
        except Exception:  # the next round tries again; the heartbeat still runs
            logger.exception("missed-run detection failed")
        try:
            beat = await heartbeat.beat(settings, repository, gateway)
        except Exception:
            logger.exception("heartbeat failed")
    return RoundReport(missed=tick, beat=beat)


async def run(
    settings: Settings,
    repository: Repository,
    *,
    interval_s: float = INTERVAL_S,
    stopped: Callable[[], bool] = lambda: False,
    connect: Connect = connect_prefect,
) -> None:
    """Rounds every ``interval_s`` until ``stopped()``."""
    while not stopped():
        started = time.monotonic()
        report = await one_round(settings, repository, connect)
        logger.debug("monitor round: %s", report)
        while not stopped() and time.monotonic() - started < interval_s:
            await asyncio.sleep(min(0.2, interval_s))
