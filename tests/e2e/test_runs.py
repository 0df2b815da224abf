"""Synced deployments run on a real worker, of both types, with each row's policy."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State

from tests.conftest import ScheduleFactory
from tests.fixtures.http_target import HttpTarget
from tests.fixtures.prefect import ON_BOTH_WORKER_TYPES, WorkerFactory
from tests.fixtures.processes import wait_for
from tests.fixtures.sync import SyncTarget

# The runs, not the tables, are under test here: PostgreSQL tables only. Retries and
# timeouts run on both worker types; the rest is decided by Prefect's server (queues,
# priorities) or by the flow in its process, the same code on both: the warm worker.
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"],
                                     indirect=True)  # fmt: skip

# Never due during a test: runs are created on demand.
NEVER_DUE = "0 0 1 1 *"
RUN_TIMEOUT_S = 120


def _run_now(target: SyncTarget, schedule_id: str) -> UUID:
    deployment = target.deployments()[schedule_id]

    async def create() -> UUID:
        async with get_client() as client:
            run = await client.create_flow_run_from_deployment(deployment.id)
            return run.id

    return asyncio.run(create())


def _read_run(run_id: UUID) -> FlowRun:
    async def read() -> FlowRun:
        async with get_client() as client:
            return await client.read_flow_run(run_id)

    return asyncio.run(read())


def _wait_final(run_id: UUID, timeout_s: float = RUN_TIMEOUT_S) -> FlowRun:
    def final() -> FlowRun | None:
        run = _read_run(run_id)
        return run if run.state is not None and run.state.is_final() else None

    return wait_for(final, timeout_s=timeout_s, interval_s=0.5, what=f"flow run {run_id} final")


def _retry_delays_s(run_id: UUID) -> list[float]:
    """For each AwaitingRetry state of the run, in order: how long it was set to wait."""

    async def read() -> list[State]:
        async with get_client() as client:
            return await client.read_flow_run_states(run_id)

    waits = sorted(
        (state for state in asyncio.run(read()) if state.name == "AwaitingRetry"),
        key=lambda state: state.timestamp,
    )
    return [
        (state.state_details.scheduled_time - state.timestamp).total_seconds()
        for state in waits
        if state.state_details.scheduled_time is not None
    ]


def _http_row(
    target: SyncTarget,
    schedule_factory: ScheduleFactory,
    http_target: HttpTarget,
    path: str,
    **fields: Any,
) -> str:
    param = {"url": http_target.url(path), "json": {"row": path, "text": "每日資料清理任務"}}
    fields.setdefault("overlap", "allow")  # several runs of one row may be in flight
    row = target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, job_name="httpCall", param=param, **fields)
    )
    return row.id


@pytest.fixture
def worker(sync_target: SyncTarget, start_worker: WorkerFactory, database_url: str) -> None:
    start_worker(sync_target.settings.work_pool, database_url=database_url)


@pytest.mark.usefixtures("worker")
def test_the_job_receives_the_rows_param(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, http_target: HttpTarget
) -> None:
    schedule_id = _http_row(sync_target, schedule_factory, http_target, "/param", max_retries=0)
    sync_target.sync()

    run = _wait_final(_run_now(sync_target, schedule_id))

    assert run.state is not None and run.state.is_completed()
    [hit] = http_target.hits_of("/param")
    assert hit.body == {"row": "/param", "text": "每日資料清理任務"}


@pytest.mark.usefixtures("worker")
@ON_BOTH_WORKER_TYPES
def test_two_failures_then_success_completes_after_three_attempts(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, http_target: HttpTarget
) -> None:
    http_target.script("/flaky", 500, 500)
    schedule_id = _http_row(
        sync_target, schedule_factory, http_target, "/flaky", max_retries=2, retry_delay_ms=0
    )
    sync_target.sync()

    run = _wait_final(_run_now(sync_target, schedule_id))

    assert run.state is not None and run.state.is_completed()
    assert run.run_count == 3
    assert len(http_target.hits_of("/flaky")) == 3


@pytest.mark.usefixtures("worker")
@ON_BOTH_WORKER_TYPES
def test_retries_exhausted_end_failed(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, http_target: HttpTarget
) -> None:
    http_target.script("/down", 500, 500, 500, 500)
    schedule_id = _http_row(
        sync_target, schedule_factory, http_target, "/down", max_retries=1, retry_delay_ms=0
    )
    sync_target.sync()

    run = _wait_final(_run_now(sync_target, schedule_id))

    assert run.state is not None and run.state.is_failed()
    assert len(http_target.hits_of("/down")) == 2


@pytest.mark.usefixtures("worker")
@ON_BOTH_WORKER_TYPES
def test_a_run_longer_than_its_timeout_fails_as_timed_out(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, job_name="sleep", param=5, timeout_ms=1_000, max_retries=0)
    )
    sync_target.sync()

    run = _wait_final(_run_now(sync_target, row.id))

    assert run.state is not None and run.state.is_failed()
    assert run.state.name == "TimedOut"
    assert run.total_run_time.total_seconds() < 4


@pytest.mark.usefixtures("worker")
def test_exponential_backoff_doubles_the_delay(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, http_target: HttpTarget
) -> None:
    http_target.script("/backoff", 500, 500)
    schedule_id = _http_row(
        sync_target, schedule_factory, http_target, "/backoff",
        max_retries=2, retry_delay_ms=2_000, retry_backoff="exponential",
    )  # fmt: skip
    sync_target.sync()

    run = _wait_final(_run_now(sync_target, schedule_id))

    assert run.state is not None and run.state.is_completed()
    # The delays Prefect scheduled, exact: the gaps between hits also hold each attempt's
    # start-up, which a loaded machine stretches by a second or more.
    assert _retry_delays_s(run.id) == pytest.approx([2.0, 4.0], abs=0.1)
    first, second, third = (hit.at for hit in http_target.hits_of("/backoff"))
    assert second - first >= 2.0
    assert third - second >= 4.0


def test_two_rows_of_one_job_keep_their_own_policies(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    http_target: HttpTarget,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    http_target.script("/a", 500, 500, 500)
    http_target.script("/b", 500, 500, 500)
    patient = _http_row(
        sync_target, schedule_factory, http_target, "/a", max_retries=3, retry_delay_ms=0
    )
    impatient = _http_row(
        sync_target, schedule_factory, http_target, "/b", max_retries=0, retry_delay_ms=0
    )
    sync_target.sync()
    start_worker(sync_target.settings.work_pool, database_url=database_url)

    patient_run = _wait_final(_run_now(sync_target, patient))
    impatient_run = _wait_final(_run_now(sync_target, impatient))

    assert patient_run.state is not None and patient_run.state.is_completed()
    assert impatient_run.state is not None and impatient_run.state.is_failed()
    assert len(http_target.hits_of("/a")) == 4
    assert len(http_target.hits_of("/b")) == 1


def test_higher_priority_rows_run_first_when_the_pool_is_saturated(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    http_target: HttpTarget,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    urgent = _http_row(sync_target, schedule_factory, http_target, "/urgent", priority=1)
    routine = _http_row(sync_target, schedule_factory, http_target, "/routine", priority=5)
    sync_target.sync()
    # Routine runs are created first: priority, not age, must decide.
    runs = [_run_now(sync_target, routine) for _ in range(3)]
    runs += [_run_now(sync_target, urgent) for _ in range(3)]
    start_worker(sync_target.settings.work_pool, database_url=database_url, limit=1)

    for run_id in runs:
        _wait_final(run_id)

    order = [hit.path for hit in sorted(http_target.hits, key=lambda hit: hit.at)]
    assert order == ["/urgent"] * 3 + ["/routine"] * 3
