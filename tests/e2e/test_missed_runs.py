"""Missed runs in real time: a real Prefect server, a process worker that is stopped, then a
paused work pool; the monitor (what the sync watcher runs every minute) restarted midway.

Minutes of wall time (it waits for real fire times of a ``* * * * *`` row): ``slow``. The
same rules at fixed instants run in the default suite (tests/integration/test_missed_runs.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolUpdate
from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text

from jobctl.metrics import MetricsSource
from jobctl.missed_run_model import MissedRun
from jobctl.models import JobHistory
from jobctl.prefect import monitor
from jobctl.settings import Settings
from tests.conftest import ScheduleFactory
from tests.fixtures.http_target import HttpTarget
from tests.fixtures.prefect import WorkerFactory
from tests.fixtures.processes import wait_for
from tests.fixtures.sync import SyncTarget

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True),
]

GRACE_MS = 5_000
FIRE_TIMEOUT_S = 90  # one fire time of a every-minute row, its grace and a round


@contextmanager
def monitoring(settings: Settings, target: SyncTarget) -> Iterator[None]:
    """``monitor.run`` every second in a thread of its own, until the block ends."""
    stop = threading.Event()
    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run,
        args=(
            asyncio.run,
            monitor.run(settings, target.repository, interval_s=1.0, stopped=stop.is_set),
        ),
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()


def missed_count(target: SyncTarget) -> int:
    with target.repository.session() as session:
        return int(session.scalar(select(func.count()).select_from(MissedRun)) or 0)


def attempts(target: SyncTarget) -> int:
    with target.repository.session() as session:
        return int(session.scalar(select(func.count()).select_from(JobHistory)) or 0)


def online_workers(pool: str) -> int:
    async def read() -> int:
        async with get_client() as client:
            found = await client.read_workers_for_work_pool(
                pool, worker_filter=WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"]))
            )
            return len(found)

    return asyncio.run(read())


def pause_pool(pool: str) -> None:
    async def pause() -> None:
        async with get_client() as client:
            await client.update_work_pool(pool, WorkPoolUpdate(is_paused=True))

    asyncio.run(pause())


def test_a_stopped_worker_and_a_paused_pool_give_one_alert_per_missed_run(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    http_target: HttpTarget,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    pool = sync_target.settings.work_pool
    block = f"missed-{uuid.uuid4().hex[:8]}"
    CustomWebhookNotificationBlock(
        name="jobctl test receiver",
        url=http_target.url("/missed"),
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        allow_private_urls=True,
    ).save(block)
    row = sync_target.repository.add_schedule(
        schedule_factory(
            cron="* * * * *", timezone="UTC", misfire_grace_ms=GRACE_MS, overlap="allow"
        )
    ).id
    with sync_target.repository.engine.begin() as connection:
        connection.execute(
            text('UPDATE "JobSchedule" SET "alertTo" = :slug'), {"slug": f"custom-webhook/{block}"}
        )
    sync_target.sync()
    settings = Settings(database_url=database_url, work_pool=pool)
    worker = start_worker(pool, database_url=database_url)
    wait_for(lambda: online_workers(pool), timeout_s=60, what="the worker online")
    worker.stop()  # the worker is down from now on

    with monitoring(settings, sync_target):
        wait_for(lambda: missed_count(sync_target) >= 1, timeout_s=FIRE_TIMEOUT_S, what="1st")
    with monitoring(settings, sync_target):  # the watcher restarted
        wait_for(lambda: missed_count(sync_target) >= 2, timeout_s=FIRE_TIMEOUT_S, what="2nd")
        wait_for(lambda: len(http_target.hits_of("/missed")) >= 2, timeout_s=30, what="alerts")

        start_worker(pool, database_url=database_url)  # back: catches up once, skips the rest
        wait_for(lambda: attempts(sync_target) >= 1, timeout_s=FIRE_TIMEOUT_S, what="catch-up")
        pause_pool(pool)
        wait_for(lambda: missed_count(sync_target) >= 3, timeout_s=FIRE_TIMEOUT_S, what="3rd")
        wait_for(lambda: len(http_target.hits_of("/missed")) >= 3, timeout_s=30, what="alert")

    hits = http_target.hits_of("/missed")
    assert len(hits) == missed_count(sync_target) == 3
    assert all(row in hit.body["body"] for hit in hits)
    assert len({hit.body["body"] for hit in hits}) == 3  # three due times, each once
    scrape = MetricsSource(sync_target.repository).scrape()
    counted = [
        sample.value
        for family in text_string_to_metric_families(scrape.decode())
        for sample in family.samples
        if sample.name == "jobctl_missed_runs_total" and sample.labels["schedule"] == row
    ]
    assert counted == [3]
