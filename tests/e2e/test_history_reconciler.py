"""The history reconciler closes what runs could not write: dead runs, a database outage,
with real runs on a real worker. Its decisions over the in-memory Prefect (an attempt of a
finished run closed with its outcome, backfills, retries after a crash):
tests/unit/test_reconciler_over_fake.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from prefect.client.orchestration import get_client

from deployments.spec import HEARTBEAT_S
from jobctl import registry
from jobctl.models import JobStatus
from jobctl.prefect import reconciler
from jobctl.prefect.gateway.client import ClientGateway
from jobctl.prefect.gateway.payloads import ZOMBIE_MISSED_HEARTBEATS
from tests.conftest import ScheduleFactory
from tests.e2e.test_history import _attempts, _worker_and_processing_run
from tests.e2e.test_runs import NEVER_DUE, _http_row, _read_run, _run_now, _wait_final
from tests.fixtures.http_target import HttpTarget
from tests.fixtures.prefect import WorkerFactory
from tests.fixtures.processes import kill_worker_and_its_runs, wait_for
from tests.fixtures.sync import SyncTarget

UNREACHABLE_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/down"


def _reconcile(
    target: SyncTarget, *, grace_s: float = 60, later: timedelta = timedelta()
) -> reconciler.ReconcileReport:
    """One round, as it runs now or ``later`` (a Completed run's history is closed once
    its final state has settled: ``reconciler.FINAL_STATE_SETTLE``)."""

    async def once() -> reconciler.ReconcileReport:
        async with get_client() as client:
            return await reconciler.reconcile(
                target.repository,
                ClientGateway(client),
                registry.job_names(),
                work_pool_name=target.settings.work_pool,
                now=datetime.now(UTC) + later,
                dead_run_grace=timedelta(seconds=grace_s),
                backfill_window=timedelta(hours=1),
            )

    return asyncio.run(once())


def test_history_missed_while_the_database_was_down_is_backfilled(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    http_target: HttpTarget,
    start_worker: WorkerFactory,
) -> None:
    http_target.script("/flaky", 500)
    flaky = _http_row(
        sync_target, schedule_factory, http_target, "/flaky", max_retries=1, retry_delay_ms=0
    )
    sync_target.sync()
    # The worker's runs cannot reach the history database at all.
    start_worker(sync_target.settings.work_pool, database_url=UNREACHABLE_DATABASE)

    run_id = _run_now(sync_target, flaky)
    run = _wait_final(run_id)

    assert run.state is not None and run.state.is_completed()  # the job's outcome stands
    assert _attempts(sync_target.repository, run_id) == []

    report = _reconcile(sync_target, later=reconciler.FINAL_STATE_SETTLE)

    assert report.backfilled == 2
    first, second = _attempts(sync_target.repository, run_id)
    assert (first.attempt, first.status) == (1, JobStatus.FAILED)
    assert (second.attempt, second.status) == (2, JobStatus.SUCCESS)
    assert first.schedule_id == flaky
    assert first.job_name == "httpCall"
    assert first.end_at is not None and first.end_at <= second.start_at
    assert _reconcile(sync_target, later=reconciler.FINAL_STATE_SETTLE).backfilled == 0  # once


@pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_a_dead_run_without_a_timeout_is_crashed_by_missed_heartbeats(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    worker, run_id = _worker_and_processing_run(
        sync_target, start_worker, database_url,
        schedule_factory(cron=NEVER_DUE, job_name="sleep", param=600, timeout_ms=0,
                         max_retries=0),
    )  # fmt: skip
    kill_worker_and_its_runs(worker)

    # Prefect's zombie automation (created by the sync) crashes the silent run...
    wait_for(
        lambda: _read_run(run_id).state.is_crashed(),  # type: ignore[union-attr]
        timeout_s=HEARTBEAT_S * ZOMBIE_MISSED_HEARTBEATS + 90,
        interval_s=2,
        what="the run crashed by missed heartbeats",
    )
    # ...and the reconciler closes its attempt.
    assert _reconcile(sync_target).closed == 1
    [attempt] = _attempts(sync_target.repository, run_id)
    assert attempt.status is JobStatus.FAILED
    assert attempt.error is not None and attempt.error.startswith("crashed: no heartbeat")
