"""Every attempt of every run lands in JobHistory, written from the flow run itself.

On both worker types: the process worker with the tables on SQLite, the warm worker with
them on PostgreSQL (each behaviour on each worker type and each database, at the cost of
two runs).
"""

from __future__ import annotations

import asyncio
import os
import signal
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Cancelling

from jobctl.models import JobStatus
from jobctl.records import Attempt, HistoryFilter, ScheduleSpec
from jobctl.repository import Repository
from tests.conftest import ScheduleFactory
from tests.e2e.test_runs import NEVER_DUE, _http_row, _read_run, _run_now, _wait_final
from tests.fixtures.http_target import HttpTarget
from tests.fixtures.prefect import PROCESS, WARM, WorkerFactory
from tests.fixtures.processes import Child, wait_for
from tests.fixtures.sync import SyncTarget

pytestmark = pytest.mark.parametrize(
    ("database_url", "worker_type"),
    [
        pytest.param("sqlite", PROCESS, id="sqlite-process"),
        pytest.param("postgresql", WARM, id="postgres-warm"),
    ],
    indirect=True,
)


def flow_process_of(run_id: UUID) -> int:
    """The pid of the run's flow process, as its worker recorded it."""
    pid = wait_for(
        lambda: _read_run(run_id).infrastructure_pid, timeout_s=30, what="infrastructure_pid"
    )
    return int(pid)


def _attempts(repo: Repository, run_id: UUID) -> list[Attempt]:
    rows = repo.list_history(HistoryFilter(limit=100))
    return sorted((r for r in rows if r.flow_run_id == str(run_id)), key=lambda r: r.attempt or 0)


@pytest.fixture
def worker(sync_target: SyncTarget, start_worker: WorkerFactory, database_url: str) -> Child:
    return start_worker(sync_target.settings.work_pool, database_url=database_url)


@pytest.mark.usefixtures("worker")
def test_a_successful_run_leaves_one_success_row(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, param=["param1", "param2"])
    )
    sync_target.sync()

    run_id = _run_now(sync_target, row.id)
    _wait_final(run_id)

    [attempt] = _attempts(sync_target.repository, run_id)
    assert attempt.status is JobStatus.SUCCESS
    assert attempt.job_name == "processData"
    assert attempt.param == ["param1", "param2"]
    assert attempt.schedule_id == row.id
    assert attempt.attempt == 1
    assert attempt.error is None
    assert attempt.end_at is not None and attempt.end_at >= attempt.start_at
    assert attempt.peak_memory_bytes is not None and attempt.peak_memory_bytes > 10 * 2**20


@pytest.mark.usefixtures("worker")
def test_each_retry_leaves_its_own_row_with_its_own_outcome(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, http_target: HttpTarget
) -> None:
    http_target.script("/flaky", 500, 503)
    schedule_id = _http_row(
        sync_target, schedule_factory, http_target, "/flaky", max_retries=2, retry_delay_ms=0
    )
    sync_target.sync()

    run_id = _run_now(sync_target, schedule_id)
    _wait_final(run_id)

    attempts = _attempts(sync_target.repository, run_id)
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert [a.status for a in attempts] == [JobStatus.FAILED, JobStatus.FAILED, JobStatus.SUCCESS]
    assert attempts[0].error is not None and attempts[0].error.startswith("HTTPStatusError")
    assert "500" in attempts[0].error.splitlines()[0]
    assert attempts[1].error is not None and "503" in attempts[1].error.splitlines()[0]
    assert "Traceback" in attempts[0].error


@pytest.mark.usefixtures("worker")
def test_a_final_failure_is_recorded_once(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, job_name="fail", param="boom", max_retries=0)
    )
    sync_target.sync()

    run_id = _run_now(sync_target, row.id)
    _wait_final(run_id)

    [attempt] = _attempts(sync_target.repository, run_id)
    assert attempt.status is JobStatus.FAILED
    assert attempt.error is not None and attempt.error.startswith("DemoFailure: boom")


@pytest.mark.usefixtures("worker")
def test_a_timed_out_attempt_is_failed_saying_so(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, job_name="sleep", param=10, timeout_ms=1_000,
                         max_retries=0)
    )  # fmt: skip
    sync_target.sync()

    run_id = _run_now(sync_target, row.id)
    _wait_final(run_id)

    # Read as soon as the run is final: the body recorded the timeout before Prefect
    # ended the run (the on_failure hook, which runs after, words it as Prefect does).
    [attempt] = _attempts(sync_target.repository, run_id)
    assert attempt.status is JobStatus.FAILED
    assert attempt.error == "timed out: the attempt exceeded its timeout of 1 s"


def _wait_processing(repo: Repository, run_id: UUID) -> Attempt:
    def processing() -> Attempt | None:
        attempts = _attempts(repo, run_id)
        return attempts[0] if attempts and attempts[0].status is JobStatus.PROCESSING else None

    return wait_for(processing, timeout_s=90, what="a PROCESSING attempt")


def _worker_and_processing_run(
    sync_target: SyncTarget, start_worker: WorkerFactory, database_url: str, spec: ScheduleSpec
) -> tuple[Child, UUID]:
    """A worker, and a run of a new row of ``spec`` asked for now, PROCESSING in history."""
    row = sync_target.repository.add_schedule(spec)
    sync_target.sync()
    worker = start_worker(sync_target.settings.work_pool, database_url=database_url)
    run_id = _run_now(sync_target, row.id)
    _wait_processing(sync_target.repository, run_id)
    return worker, run_id


@pytest.mark.usefixtures("worker")
def test_a_run_cancelled_through_the_api_is_failed_as_cancelled(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, job_name="sleep", param=60, timeout_ms=0, max_retries=0)
    )
    sync_target.sync()
    run_id = _run_now(sync_target, row.id)
    _wait_processing(sync_target.repository, run_id)

    async def cancel() -> None:
        async with get_client() as client:
            await client.set_flow_run_state(run_id, Cancelling(message="cancelled by a test"))

    asyncio.run(cancel())
    run = _wait_final(run_id)

    assert run.state is not None and run.state.is_cancelled()
    [attempt] = wait_for(
        lambda: [a for a in _attempts(sync_target.repository, run_id) if a.end_at],
        timeout_s=60,
        what="the attempt closed",
    )
    assert attempt.status is JobStatus.FAILED
    assert attempt.error is not None and attempt.error.startswith("cancelled")


def test_a_flow_process_killed_with_sigterm_is_failed_as_crashed(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, worker: Child
) -> None:
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, job_name="sleep", param=60, timeout_ms=0, max_retries=0)
    )
    sync_target.sync()
    run_id = _run_now(sync_target, row.id)
    _wait_processing(sync_target.repository, run_id)

    os.kill(flow_process_of(run_id), signal.SIGTERM)
    run = _wait_final(run_id)

    assert run.state is not None and (run.state.is_crashed() or run.state.is_failed())
    [attempt] = wait_for(
        lambda: [a for a in _attempts(sync_target.repository, run_id) if a.end_at],
        timeout_s=60,
        what="the attempt closed",
    )
    assert attempt.status is JobStatus.FAILED
    assert attempt.error is not None
    assert attempt.error.split(":")[0] in {"crashed", "cancelled"}, attempt.error


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "sigint"])
def test_a_flow_process_ended_by_a_signal_is_crashed_with_its_exit_status(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, worker: Child, sig: int
) -> None:
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, job_name="sleep", param=60, timeout_ms=0, max_retries=0)
    )
    sync_target.sync()
    run_id = _run_now(sync_target, row.id)
    _wait_processing(sync_target.repository, run_id)

    os.kill(flow_process_of(run_id), sig)
    run = _wait_final(run_id)

    assert run.state is not None and run.state.is_crashed(), run.state
    [attempt] = wait_for(
        lambda: [a for a in _attempts(sync_target.repository, run_id) if a.end_at],
        timeout_s=60,
        what="the attempt closed",
    )
    assert attempt.status is JobStatus.FAILED
    assert attempt.error is not None and attempt.error.startswith("crashed"), attempt.error
