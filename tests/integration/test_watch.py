"""`jobctl sync --watch` carries an edit made by plain SQL to Prefect."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import text

from deployments import watch as schedule_watch
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.conftest import ScheduleFactory
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.processes import wait_for
from tests.fixtures.sync import SyncTarget


@dataclass
class RunningWatcher:
    errors: list[Exception] = field(default_factory=list)


@contextmanager
def running_watcher(
    settings: Settings, repository: Repository, api_url: str | None = None
) -> Iterator[RunningWatcher]:
    """The watcher in a thread of its own, stopped (and its errors raised) on exit."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []
    running = RunningWatcher()

    def run() -> None:
        try:
            loop.run_until_complete(
                schedule_watch.watch(
                    settings, repository, stop=stop, on_error=running.errors.append
                )
            )
        except BaseException as exc:
            failure.append(exc)

    # Prefect's settings (the test server's URL) live in a context variable.
    with temporary_settings({PREFECT_API_URL: api_url} if api_url else {}):
        context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(run,), daemon=True)
    thread.start()
    try:
        yield running
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        assert not thread.is_alive(), "the watcher did not stop"
        assert failure == []
        loop.close()


@pytest.fixture
def watcher(sync_target: SyncTarget) -> Iterator[RunningWatcher]:
    with running_watcher(sync_target.settings, sync_target.repository) as running:
        yield running


def test_the_watcher_outlasts_a_prefect_api_that_answers_500_for_a_while(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    flaky_proxy: Callable[[str], FlakyProxy],
) -> None:
    proxy = flaky_proxy(sync_target.server.api_url.removesuffix("/api"))
    proxy.fail(True)
    settings = sync_target.settings.model_copy(update={"watch_interval_s": 0.2})
    row = sync_target.repository.add_schedule(schedule_factory())

    with running_watcher(settings, sync_target.repository, proxy.api_url()) as running:
        wait_for(lambda: len(running.errors) >= 3, timeout_s=30, what="three failed syncs")
        proxy.fail(False)
        wait_for(lambda: row.id in sync_target.deployments(), timeout_s=60, what="the sync")

    assert proxy.refused >= 3
    assert {type(exc).__name__ for exc in running.errors} == {"PrefectHTTPStatusError"}


@pytest.mark.usefixtures("watcher")
def test_an_edit_by_plain_sql_reaches_the_deployment(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    row = sync_target.repository.add_schedule(schedule_factory())
    wait_for(lambda: row.id in sync_target.deployments(), timeout_s=30, what="first sync")

    with sync_target.repository.engine.begin() as conn:
        conn.execute(
            text('UPDATE "JobSchedule" SET cron = :cron, description = :d WHERE id = :id'),
            {"cron": "7 7 * * *", "d": "edited by SQL", "id": row.id},
        )

    # An update is two calls (the deployment, then its schedules): wait for both.
    wait_for(
        lambda: (
            (d := sync_target.deployments()[row.id]).description == "edited by SQL"
            and d.schedules[0].schedule.cron == "7 7 * * *"  # type: ignore[union-attr]
        ),
        timeout_s=30,
        interval_s=0.2,
        what="the edit mirrored",
    )

    with sync_target.repository.engine.begin() as conn:
        conn.execute(text('DELETE FROM "JobSchedule" WHERE id = :id'), {"id": row.id})
    wait_for(lambda: row.id not in sync_target.deployments(), timeout_s=30, what="deletion")
