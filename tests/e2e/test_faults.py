"""Faults on the running system: workers killed mid-run, runaway jobs, a sync killed half-way.

Real processes throughout: ``prefect worker start``, ``jobctl sync --watch`` and
``jobctl sync`` as children, killed with real signals; PostgreSQL tables. Restarts of
PostgreSQL and of the Prefect server are in ``test_fault_restarts.py``.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable

import pytest

from jobctl.models import JobStatus
from tests.conftest import ScheduleFactory
from tests.e2e.test_history import _attempts, _wait_processing, _worker_and_processing_run
from tests.e2e.test_history_reconciler import _reconcile
from tests.e2e.test_runs import NEVER_DUE, _read_run, _run_now, _wait_final
from tests.fixtures.prefect import ON_BOTH_WORKER_TYPES, WorkerFactory
from tests.fixtures.processes import Child, flow_processes, kill_worker_and_its_runs, wait_for
from tests.fixtures.sync import JobctlFactory, SyncTarget

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True),
]


@pytest.fixture
def jobctl(
    jobctl_for: Callable[[SyncTarget], JobctlFactory], sync_target: SyncTarget
) -> JobctlFactory:
    return jobctl_for(sync_target)


# systemd waits TimeoutStopSec (90 s by default) after SIGTERM, docker stop 10 s.
STOP_GRACE_S = 30


def _stop_worker(worker: Child) -> None:
    """SIGTERM to the worker alone, as ``systemctl stop`` or ``docker stop`` sends it; what
    is left after the grace is killed, as they do (``KillMode=control-group`` in
    deploy/systemd). Prefect's worker usually exits within seconds, but once in a while
    took over a minute here."""
    worker.process.send_signal(signal.SIGTERM)
    try:
        worker.process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        kill_worker_and_its_runs(worker)


@ON_BOTH_WORKER_TYPES
@pytest.mark.parametrize(
    ("end_worker", "may_drain"),
    [
        pytest.param(kill_worker_and_its_runs, False, id="sigkill"),
        pytest.param(_stop_worker, True, id="sigterm"),
    ],
)
def test_a_run_whose_worker_dies_is_failed_with_a_reason_and_retried_when_the_row_allows(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
    jobctl: JobctlFactory,
    end_worker: Callable[[Child], None],
    may_drain: bool,
) -> None:
    """Done: a run of a row with one retry (sleep 6 s, timeout 12 s) is under way when its
    worker is killed with SIGKILL together with its flow process, or stopped with SIGTERM;
    a replacement worker starts; ``jobctl sync --watch`` runs beside them.
    Checked: the run ends Completed with no attempt left PROCESSING. When the attempt was
    lost (always with SIGKILL), attempt 1 is FAILED with a "crashed" reason and the retry,
    attempt 2, is SUCCESS. On SIGTERM, Prefect's worker sometimes lets the run finish
    (its process is in a session of its own): then attempt 1 is SUCCESS and nothing is
    retried."""
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, job_name="sleep", param=6, timeout_ms=12_000,
                         max_retries=1, retry_delay_ms=0)
    )  # fmt: skip
    sync_target.sync()
    # The watcher reconciles history: it finds the dead run and retries it.
    jobctl("sync", "--watch", JOBCTL_RECONCILE_INTERVAL_S=1, JOBCTL_DEAD_RUN_GRACE_S=1)
    first_worker = start_worker(sync_target.settings.work_pool, database_url=database_url)
    run_id = _run_now(sync_target, row.id)
    _wait_processing(sync_target.repository, run_id)

    end_worker(first_worker)
    start_worker(sync_target.settings.work_pool, database_url=database_url)  # its replacement
    # Crashed is final too: wait for the run to complete, through its retry if it has one.
    run = wait_for(
        lambda: (r := _wait_final(run_id, timeout_s=180)).state.is_completed() and r,  # type: ignore[union-attr]
        timeout_s=180,
        interval_s=1,
        what="the run completed",
    )

    attempts = _attempts(sync_target.repository, run_id)
    assert all(attempt.status is not JobStatus.PROCESSING for attempt in attempts)
    if may_drain and run.run_count == 1:
        [drained] = attempts
        assert (drained.attempt, drained.status) == (1, JobStatus.SUCCESS)
        return
    assert run.run_count == 2
    first, second = attempts
    assert (first.attempt, first.status) == (1, JobStatus.FAILED)
    assert first.error is not None and first.error.startswith("crashed"), first.error
    assert (second.attempt, second.status) == (2, JobStatus.SUCCESS)


@ON_BOTH_WORKER_TYPES
def test_a_crashed_run_is_not_retried_beyond_the_rows_retries(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    """Done: a run of a row without retries loses its worker and flow process (SIGKILL).
    Checked: the reconciler crashes it within timeout + grace, fails its attempt with a
    "crashed" reason, and does not retry it."""
    worker, run_id = _worker_and_processing_run(
        sync_target, start_worker, database_url,
        schedule_factory(cron=NEVER_DUE, job_name="sleep", param=60, timeout_ms=2_000,
                         max_retries=0),
    )  # fmt: skip

    kill_worker_and_its_runs(worker)
    assert _read_run(run_id).state.is_running()  # type: ignore[union-attr]
    # Within the bound: timeout (2 s) + grace (1 s) after the run started.
    wait_for(lambda: _reconcile(sync_target, grace_s=1).crashed, timeout_s=30, interval_s=1,
             what="the dead run crashed")  # fmt: skip
    report = _reconcile(sync_target, grace_s=1)

    assert report.retried == 0
    assert _read_run(run_id).state.is_crashed()  # type: ignore[union-attr]
    [attempt] = _attempts(sync_target.repository, run_id)
    assert attempt.status is JobStatus.FAILED
    assert attempt.error is not None and attempt.error.startswith("crashed")


@pytest.mark.parametrize(
    ("job_name", "param"),
    [pytest.param("sleep", 1e9, id="never-returns"), pytest.param("leak", 40, id="leaks-memory")],
)
def test_a_runaway_job_is_bounded_by_its_timeout_and_the_worker_survives(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
    job_name: str,
    param: float,
) -> None:
    """Done: a job that never returns, and one that takes 40 MiB more every second, run with
    a 4 s timeout on a worker limited to one run at a time.
    Checked: the run ends TimedOut, its attempt FAILED "timed out" (the leak's peak memory
    grew by over 80 MiB), the worker is alive, its next run completes and no flow process
    is left behind."""
    runaway = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, job_name=job_name, param=param, timeout_ms=4_000,
                         max_retries=0)
    )  # fmt: skip
    quick = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, job_name="processData", param=["after"])
    )
    sync_target.sync()
    worker = start_worker(sync_target.settings.work_pool, database_url=database_url, limit=1)

    run = _wait_final(_run_now(sync_target, runaway.id))

    assert run.state is not None and run.state.name == "TimedOut", run.state
    [attempt] = _attempts(sync_target.repository, run.id)
    assert attempt.status is JobStatus.FAILED
    assert attempt.error is not None and attempt.error.startswith("timed out")
    assert worker.alive()
    after = _wait_final(_run_now(sync_target, quick.id))
    assert after.state is not None and after.state.is_completed()
    if job_name == "leak":  # it did grow, by MiBs a second, until the timeout stopped it
        [quick_attempt] = _attempts(sync_target.repository, after.id)
        assert attempt.peak_memory_bytes and quick_attempt.peak_memory_bytes
        assert attempt.peak_memory_bytes - quick_attempt.peak_memory_bytes > 2 * param * 2**20
    wait_for(
        lambda: not flow_processes(worker.pid),
        timeout_s=30,
        what="no flow process left under the worker",
    )


def test_a_sync_killed_half_way_through_its_plan_is_completed_by_the_next_sync(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, jobctl: JobctlFactory
) -> None:
    """Done: ``jobctl sync`` of 120 new rows is killed with SIGKILL once 10 deployments exist.
    Checked: fewer deployments than rows existed; the next ``jobctl sync`` exits 0 with
    exactly one deployment per row, and a sync after it plans nothing."""
    rows = [sync_target.repository.add_schedule(schedule_factory()) for _ in range(120)]
    sync = jobctl("sync")
    wait_for(lambda: len(sync_target.deployments()) >= 10, timeout_s=120,
             interval_s=0.1, what="the sync under way")  # fmt: skip
    assert sync.alive(), sync.log()
    sync.signal_group(signal.SIGKILL)
    sync.process.wait(timeout=10)
    assert len(sync_target.deployments()) < len(rows)  # it really was cut half-way

    again = jobctl("sync")
    assert again.process.wait(timeout=180) == 0, again.log()

    assert set(sync_target.deployments()) == {row.id for row in rows}  # one per row
    assert sync_target.sync().plan.is_noop
