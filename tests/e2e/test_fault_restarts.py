"""Restarts under load: PostgreSQL and the Prefect server go away and come back.

This module owns both: a PostgreSQL cluster of its own for the tables (the machine's
shared cluster also holds every other test's databases) and a Prefect server of its own
(the session's server is shared). Both are real and restarted for real.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from jobctl import db
from jobctl.models import JobStatus
from jobctl.prefect.reconciler import FINAL_STATE_SETTLE
from jobctl.records import Attempt
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.conftest import ScheduleFactory
from tests.e2e.test_history import _attempts, _wait_processing
from tests.e2e.test_runs import NEVER_DUE, _run_now, _wait_final
from tests.fixtures.postgres_cluster import PostgresCluster
from tests.fixtures.prefect import WorkerFactory, running_prefect_server
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.processes import Child, flow_processes, wait_for
from tests.fixtures.sync import JobctlFactory, SyncTarget
from tests.fixtures.zygote import Zygote

pytestmark = pytest.mark.reliability


@pytest.fixture(scope="module")
def own_server(
    prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory, zygote: Zygote
) -> Iterator[PrefectServer]:
    # After the session's server, so that its PREFECT_API_URL setting is restored after.
    home = tmp_path_factory.mktemp("restarted-prefect")
    with running_prefect_server(home, zygote) as server:
        yield server


@pytest.fixture
def target(
    own_server: PrefectServer, postgres_cluster: PostgresCluster, work_pool_name: str
) -> Iterator[SyncTarget]:
    """Tables on the restartable cluster, deployments on the restartable server."""
    database_url = postgres_cluster.create_migrated_database(f"faults_{uuid.uuid4().hex[:8]}")
    engine = db.create_db_engine(database_url)
    settings = Settings(database_url=database_url, work_pool=work_pool_name)
    yield SyncTarget(settings=settings, repository=Repository(engine), server=own_server)
    engine.dispose()


@pytest.fixture
def jobctl(jobctl_for: Callable[[SyncTarget], JobctlFactory], target: SyncTarget) -> JobctlFactory:
    return jobctl_for(target)


def _three_runs_in_flight(
    target: SyncTarget, schedule_factory: ScheduleFactory, start_worker: WorkerFactory
) -> tuple[Child, list[uuid.UUID]]:
    """A worker and three runs of a 4 s job, each PROCESSING in history."""
    row = target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, job_name="sleep", param=4, overlap="allow",
                         max_retries=0, timeout_ms=0)
    )  # fmt: skip
    target.sync()
    worker = start_worker(target.settings.work_pool, database_url=target.settings.database_url,
                          server=target.server)  # fmt: skip
    run_ids = [_run_now(target, row.id) for _ in range(3)]
    for run_id in run_ids:
        _wait_processing(target.repository, run_id)
    return worker, run_ids


def _flow_processes(worker: Child) -> list[int]:
    return flow_processes(worker.pid)


# -- PostgreSQL ----------------------------------------------------------------------------


def test_postgres_down_during_syncs_deletes_nothing_and_the_watcher_converges_after(
    target: SyncTarget,
    schedule_factory: ScheduleFactory,
    postgres_cluster: PostgresCluster,
    jobctl: JobctlFactory,
) -> None:
    """Done: with 20 rows synced by ``jobctl sync --watch``, PostgreSQL is stopped; a one-shot
    ``jobctl sync`` runs and the watcher keeps trying; PostgreSQL starts again and a row is
    deleted and another edited by plain SQL.
    Checked: the one-shot sync fails naming the database; after three failed watcher
    passes all 20 deployments still exist; once PostgreSQL is back the watcher (still alive)
    deletes one deployment and updates the other."""
    rows = [target.repository.add_schedule(schedule_factory()) for _ in range(20)]
    watcher = jobctl("sync", "--watch", JOBCTL_WATCH_INTERVAL_S=0.5,
                     JOBCTL_FULL_RESYNC_INTERVAL_S=1)  # fmt: skip
    wait_for(lambda: len(target.deployments()) == len(rows), timeout_s=120,
             what="the watcher's first sync")  # fmt: skip

    postgres_cluster.stop()
    try:
        one_shot = jobctl("sync")
        assert one_shot.process.wait(timeout=120) != 0
        assert "database" in one_shot.log().lower(), one_shot.log()
        failures_before = watcher.log().count("sync failed, retrying")
        wait_for(lambda: watcher.log().count("sync failed, retrying") >= failures_before + 3,
                 timeout_s=60, what="three more failed watcher passes")  # fmt: skip
        assert set(target.deployments()) == {row.id for row in rows}  # nothing deleted
    finally:
        postgres_cluster.start()

    removed, edited = rows[0], rows[1]
    with target.repository.engine.begin() as conn:
        conn.execute(text('DELETE FROM "JobSchedule" WHERE id = :id'), {"id": removed.id})
        conn.execute(
            text('UPDATE "JobSchedule" SET description = :d WHERE id = :id'),
            {"d": "edited after the restart", "id": edited.id},
        )
    wait_for(
        lambda: (
            (d := target.deployments()).keys() == {r.id for r in rows[1:]}
            and d[edited.id].description == "edited after the restart"
        ),
        timeout_s=60,
        what="the watcher converged after PostgreSQL returned",
    )
    assert watcher.alive()


def test_postgres_down_while_jobs_run_loses_no_attempt_and_leaves_none_processing(
    target: SyncTarget,
    schedule_factory: ScheduleFactory,
    postgres_cluster: PostgresCluster,
    start_worker: WorkerFactory,
    jobctl: JobctlFactory,
) -> None:
    """Done: three runs are PROCESSING when PostgreSQL stops; they end (and fail to write
    their outcome) while it is down; it starts again and, once their Completed states have
    settled (the reconciler leaves a younger one alone), ``jobctl history reconcile`` runs.
    Checked: every run has exactly one attempt, SUCCESS with an end time; no attempt is
    left PROCESSING."""
    worker, run_ids = _three_runs_in_flight(target, schedule_factory, start_worker)

    postgres_cluster.stop()
    try:  # the jobs end, and try to write their outcome, while the database is down
        runs = [_wait_final(run_id) for run_id in run_ids]
        wait_for(lambda: not _flow_processes(worker), timeout_s=60, what="flow processes gone")
    finally:
        postgres_cluster.start()

    assert all(run.state is not None and run.state.is_completed() for run in runs)
    settled_at = max(run.state.timestamp for run in runs if run.state) + FINAL_STATE_SETTLE
    time.sleep(max(0.0, (settled_at - datetime.now(UTC)).total_seconds()))
    reconcile = jobctl("history", "reconcile")
    assert reconcile.process.wait(timeout=120) == 0, reconcile.log()
    for run_id in run_ids:
        [attempt] = _attempts(target.repository, run_id)
        assert attempt.status is JobStatus.SUCCESS
        assert attempt.end_at is not None
    assert target.repository.list_processing() == []


# -- the Prefect server --------------------------------------------------------------------


def test_a_sync_interrupted_by_a_prefect_restart_resumes_and_converges(
    target: SyncTarget, schedule_factory: ScheduleFactory, jobctl: JobctlFactory
) -> None:
    """Done: the Prefect server is stopped and started again while ``jobctl sync`` applies a
    plan of 60 creates (10 done).
    Checked: the same sync process resumes (Prefect's client retries a refused connection)
    and exits 0; exactly one deployment per row; a sync after it plans nothing."""
    rows = [target.repository.add_schedule(schedule_factory()) for _ in range(60)]
    sync = jobctl("sync")
    wait_for(lambda: len(target.deployments()) >= 10, timeout_s=120, interval_s=0.1,
             what="the sync under way")  # fmt: skip
    assert sync.alive(), sync.log()

    target.server.stop()
    target.server.start()

    # Prefect's client retries a refused connection for about a minute: the sync goes on.
    assert sync.process.wait(timeout=180) == 0, sync.log()
    assert set(target.deployments()) == {row.id for row in rows}  # one per row
    assert target.sync().plan.is_noop


def test_runs_in_flight_through_a_prefect_restart_end_with_true_history(
    target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
) -> None:
    """Done: the Prefect server is stopped and started again while three runs are PROCESSING.
    Checked: every run ends Completed, every attempt SUCCESS with an end time, the worker
    is alive."""
    worker, run_ids = _three_runs_in_flight(target, schedule_factory, start_worker)

    target.server.stop()
    target.server.start()

    runs = [_wait_final(run_id, timeout_s=180) for run_id in run_ids]
    assert all(run.state is not None and run.state.is_completed() for run in runs), [
        run.state for run in runs
    ]

    def all_closed() -> list[Attempt] | None:
        found = [a for run_id in run_ids for a in _attempts(target.repository, run_id)]
        return found if len(found) == len(run_ids) and all(a.end_at for a in found) else None

    closed = wait_for(all_closed, timeout_s=30, what="every attempt closed")
    assert [a.status for a in closed] == [JobStatus.SUCCESS] * len(run_ids)
    assert worker.alive()
