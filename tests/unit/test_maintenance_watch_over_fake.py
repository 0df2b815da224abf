"""The watcher ends a maintenance pause at its ``until`` by itself, over the in-memory
Prefect on SQLite (no NOTIFY): it wakes up at that time rather than at its next poll.

The same against a real server on PostgreSQL: tests/integration/test_maintenance_sync.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deployments import watch as schedule_watch
from deployments.sync import SyncReport
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.conftest import ScheduleFactory
from tests.fixtures.fake_prefect import FakePrefect, connector
from tests.fixtures.sqlite_copy import sqlite_repository

# Far longer than the test: only the pause's own end can wake the watcher in time.
INTERVAL_S = 60.0
DEADLINE_S = 20.0


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[Repository]:
    yield from sqlite_repository(tmp_path)


def test_the_watcher_wakes_up_at_until_and_resumes_exactly_the_active_rows(
    repository: Repository, schedule_factory: ScheduleFactory
) -> None:
    fake = FakePrefect()
    on = repository.add_schedule(schedule_factory())
    off = repository.add_schedule(schedule_factory(is_active=False))
    until = datetime.now(UTC) + timedelta(seconds=1)
    repository.start_maintenance(reason="x", set_by="ops", until=until, now=datetime.now(UTC))
    settings = Settings(
        database_url=str(repository.engine.url),
        work_pool="fake-pool",
        watch_interval_s=INTERVAL_S,
        full_resync_interval_s=3600,
        reconcile_interval_s=3600,
    )
    reports: list[SyncReport] = []

    async def scenario() -> float:
        stop = asyncio.Event()
        watcher = asyncio.create_task(
            schedule_watch.watch(
                settings, repository, stop=stop, on_sync=reports.append, connect=connector(fake)
            )
        )
        try:
            deadline = time.monotonic() + DEADLINE_S
            while len(reports) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return (datetime.now(UTC) - until).total_seconds()
        finally:
            stop.set()
            await asyncio.wait_for(watcher, DEADLINE_S)

    late_s = asyncio.run(scenario())

    assert len(reports) >= 2, "the pause's end did not wake the watcher"
    assert reports[0].maintenance is not None and reports[1].maintenance is None
    assert 0 <= late_s < 5
    assert {i: d.paused for i, d in fake.by_schedule().items()} == {on.id: False, off.id: True}
    assert repository.get_maintenance_or_none() is None
