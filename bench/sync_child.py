"""One ``deployments.sync.sync`` in a process of its own, for its peak memory.

``python -m bench.sync_child DATABASE_URL POOL`` (``PREFECT_API_URL`` from the environment):
what ``jobctl sync`` does, with every request counted. Prints one JSON object: the sync's
wall time, requests, writes, plan (and the ids of the rows of every action but
``unchanged``), and the process's peak resident memory (``ru_maxrss``,
imports included) and what it was before the sync (imports, no rows read yet).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any

from prefect.client.orchestration import get_client

from bench.harness import RequestLog
from deployments.plan import Action
from deployments.sync import sync
from jobctl.db import create_db_engine
from jobctl.prefect.gateway.client import ClientGateway
from jobctl.repository import Repository
from jobctl.settings import Settings


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


async def one_sync(database_url: str, pool: str) -> dict[str, Any]:
    settings = Settings(database_url=database_url, work_pool=pool)
    engine = create_db_engine(database_url)
    log = RequestLog()
    before_mb = peak_mb()
    try:
        async with get_client(httpx_settings=log.httpx_settings()) as client:
            started = time.perf_counter()
            report = await sync(settings, Repository(engine), ClientGateway(client))
            seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    return {
        "ok": report.ok,
        "failures": [str(failure.error) for failure in report.failures[:5]],
        "seconds": round(seconds, 4),
        "calls": log.calls,
        "writes": log.writes,
        "plan": {action.value: n for action, n in report.plan.counts().items()},
        "peak_rss_mb": round(peak_mb(), 1),
        "peak_rss_before_sync_mb": round(before_mb, 1),
        "endpoints": log.breakdown(),
        # After the peak was read. Row by row: the caller checks each against what it meant.
        "rows_by_action": {
            action.value: sorted(s.schedule_id for s in report.plan.steps if s.action is action)
            for action in Action
            if action is not Action.UNCHANGED
        },
        "rejected": {s.schedule_id: s.reason for s in report.plan.rejected[:20]},
        "queues_changed": not report.plan.queues.is_empty,
    }


def main(argv: list[str]) -> int:
    database_url, pool = argv
    print(json.dumps(asyncio.run(one_sync(database_url, pool))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
