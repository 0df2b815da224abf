"""The watcher's logic over the in-memory Prefect: it syncs when the table changes, plans
against what it last applied in between full reads, and outlasts a failing Prefect.

The same against a real server, through a proxy that answers 500 and with edits by plain
SQL: tests/integration/test_watch.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deployments import watch as schedule_watch
from deployments.plan import Action
from deployments.sync import SyncReport
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.conftest import ScheduleFactory
from tests.fixtures.fake_prefect import FakePrefect, connector
from tests.fixtures.sqlite_copy import sqlite_repository

INTERVAL_S = 0.05
DEADLINE_S = 20.0


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[Repository]:
    yield from sqlite_repository(tmp_path)


def _settings(repository: Repository) -> Settings:
    return Settings(
        database_url=str(repository.engine.url),
        work_pool="fake-pool",
        watch_interval_s=INTERVAL_S,
        full_resync_interval_s=3600,
        reconcile_interval_s=3600,
    )


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {DEADLINE_S} s")
        await asyncio.sleep(INTERVAL_S / 5)


def test_the_watcher_syncs_each_change_against_what_it_last_applied(
    repository: Repository, schedule_factory: ScheduleFactory
) -> None:
    fake = FakePrefect()
    first = repository.add_schedule(schedule_factory())
    reports: list[SyncReport] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        watcher = asyncio.create_task(
            schedule_watch.watch(
                _settings(repository),
                repository,
                stop=stop,
                on_sync=reports.append,
                connect=connector(fake),
            )
        )
        try:
            await _until(lambda: len(reports) == 1, "the first sync")
            # An unchanged table: no sync for many rounds.
            await asyncio.sleep(INTERVAL_S * 10)
            assert len(reports) == 1
            fake.forget_calls()
            second = repository.add_schedule(schedule_factory())
            await _until(lambda: len(reports) == 2, "the sync of the change")
            assert set(fake.by_schedule()) == {first.id, second.id}
        finally:
            stop.set()
            await asyncio.wait_for(watcher, DEADLINE_S)

    asyncio.run(scenario())

    assert reports[0].plan.counts()[Action.CREATE] == 1
    assert reports[1].plan.counts() == {Action.UNCHANGED: 1, Action.CREATE: 1}
    # Planned against what it applied before: Prefect's deployments were not read again.
    assert fake.called("read_managed_deployments") == []


def test_the_watcher_outlasts_a_failing_prefect_and_then_syncs(
    repository: Repository, schedule_factory: ScheduleFactory
) -> None:
    fake = FakePrefect()
    row = repository.add_schedule(schedule_factory())
    fake.fail_on["read_managed_deployments"] = RuntimeError("Prefect answered 500")
    failures: list[Exception] = []
    reports: list[SyncReport] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        watcher = asyncio.create_task(
            schedule_watch.watch(
                _settings(repository),
                repository,
                stop=stop,
                on_sync=reports.append,
                on_error=failures.append,
                connect=connector(fake),
            )
        )
        try:
            await _until(lambda: len(failures) >= 3, "three failed syncs")
            assert fake.writes == []
            del fake.fail_on["read_managed_deployments"]
            await _until(lambda: bool(reports), "a sync once Prefect answers")
        finally:
            stop.set()
            await asyncio.wait_for(watcher, DEADLINE_S)

    asyncio.run(scenario())

    assert {str(exc) for exc in failures} == {"Prefect answered 500"}
    assert set(fake.by_schedule()) == {row.id}
