"""Overlap per row, through Prefect deployment concurrency limits."""

from __future__ import annotations

import pytest

from jobctl.models import JobStatus
from jobctl.records import HistoryFilter
from tests.conftest import ScheduleFactory
from tests.e2e.test_history import _wait_processing
from tests.e2e.test_runs import NEVER_DUE, _run_now, _wait_final
from tests.fixtures.prefect import WorkerFactory
from tests.fixtures.sync import SyncTarget

ON_POSTGRES = pytest.mark.parametrize(
    "database_url", ["postgresql"], ids=["postgres"], indirect=True
)


def _long_row(target: SyncTarget, factory: ScheduleFactory, overlap: str) -> str:
    row = target.repository.add_schedule(
        factory(cron=NEVER_DUE, job_name="sleep", param=6, timeout_ms=0, max_retries=0,
                overlap=overlap)
    )  # fmt: skip
    target.sync()
    return row.id


@ON_POSTGRES
def test_skip_drops_a_run_due_while_the_previous_one_runs(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    schedule_id = _long_row(sync_target, schedule_factory, "skip")
    start_worker(sync_target.settings.work_pool, database_url=database_url)
    first = _run_now(sync_target, schedule_id)
    _wait_processing(sync_target.repository, first)

    second = _run_now(sync_target, schedule_id)

    second_run = _wait_final(second)
    first_run = _wait_final(first)
    assert second_run.state is not None and second_run.state.is_cancelled()
    assert first_run.state is not None and first_run.state.is_completed()
    attempts = sync_target.repository.list_history(HistoryFilter(schedule_id=schedule_id))
    assert [(a.flow_run_id, a.status) for a in attempts] == [(str(first), JobStatus.SUCCESS)]


@ON_POSTGRES
def test_queue_makes_a_run_wait_for_the_previous_one(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    schedule_id = _long_row(sync_target, schedule_factory, "queue")
    start_worker(sync_target.settings.work_pool, database_url=database_url)
    first = _run_now(sync_target, schedule_id)
    _wait_processing(sync_target.repository, first)

    second = _run_now(sync_target, schedule_id)

    _wait_final(first)
    second_run = _wait_final(second)
    assert second_run.state is not None and second_run.state.is_completed()
    attempts = sync_target.repository.list_history(HistoryFilter(schedule_id=schedule_id))
    by_run = {a.flow_run_id: a for a in attempts}
    assert by_run[str(second)].start_at >= by_run[str(first)].end_at  # type: ignore[operator]
