"""`jobctl sync --watch` carries an edit made by plain SQL to Prefect."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from deployments import watch as schedule_watch
from tests.conftest import ScheduleFactory
from tests.fixtures.processes import wait_for
from tests.fixtures.sync import SyncTarget


@pytest.fixture
def watcher(sync_target: SyncTarget) -> Iterator[None]:
    """The watcher in a thread of its own, stopped (and its errors raised) at teardown."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            loop.run_until_complete(
                schedule_watch.watch(sync_target.settings, sync_target.repository, stop=stop)
            )
        except BaseException as exc:
            failure.append(exc)

    # Prefect's settings (the test server's URL) live in a context variable.
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(run,), daemon=True)
    thread.start()
    yield
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=30)
    assert not thread.is_alive(), "the watcher did not stop"
    assert failure == []
    loop.close()


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

    deployment = wait_for(
        lambda: (d := sync_target.deployments()[row.id]).description == "edited by SQL" and d,
        timeout_s=30,
        interval_s=0.2,
        what="the edit mirrored",
    )
    assert deployment.schedules[0].schedule.cron == "7 7 * * *"  # type: ignore[union-attr]

    with sync_target.repository.engine.begin() as conn:
        conn.execute(text('DELETE FROM "JobSchedule" WHERE id = :id'), {"id": row.id})
    wait_for(lambda: row.id not in sync_target.deployments(), timeout_s=30, what="deletion")
