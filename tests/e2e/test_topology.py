"""Production topology: PostgreSQL tables and Prefect server, two workers on one pool,
two sync processes at once, and two Prefect API replicas sharing events through Redis."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import redis
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL, temporary_settings

from jobctl.models import JobStatus
from jobctl.records import HistoryFilter
from tests.conftest import ScheduleFactory
from tests.e2e.test_runs import NEVER_DUE
from tests.fixtures.prefect import WorkerFactory, scratch_postgres_database
from tests.fixtures.prefect_server import PREFECT_BIN, PrefectServer
from tests.fixtures.processes import Child, base_env, wait_for
from tests.fixtures.sync import SyncTarget
from tests.fixtures.zygote import Zygote

JOBCTL = str(Path(sys.executable).with_name("jobctl"))
WORKER_LIMIT = 5  # flow processes per worker at once
# On the warm workers a run costs about 0.3 CPU-seconds in the worker and its flow process
# and 0.3 in the server: 200 runs fit in `make test` (on process workers they took 6.6
# CPU-seconds each, 12 minutes of both cores). 200 took 3 min 46 s here on warm workers,
# run alone on a machine shared with other sessions (load 4-9).
RUNS = 200


@pytest.mark.timeout(900)
@pytest.mark.parametrize("runs", [pytest.param(RUNS, id=str(RUNS))])
@pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_two_workers_on_one_pool_execute_each_run_exactly_once(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
    runs: int,
) -> None:
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, param=["x"], overlap="allow", max_retries=0,
                         timeout_ms=0)
    )  # fmt: skip
    sync_target.sync()
    deployment = sync_target.deployments()[row.id]

    run_ids = asyncio.run(_create_runs(deployment.id, runs))
    workers = [
        start_worker(sync_target.settings.work_pool, database_url=database_url, limit=WORKER_LIMIT)
        for _ in range(2)
    ]
    wait_for(
        lambda: asyncio.run(_completed(run_ids)) == runs,
        timeout_s=1500,
        interval_s=2,
        what=f"{runs} runs completed",
    )

    attempts = sync_target.repository.list_history(
        HistoryFilter(schedule_id=row.id, limit=10 * runs)
    )
    per_run = Counter(a.flow_run_id for a in attempts)
    assert set(per_run) == {str(run_id) for run_id in run_ids}
    assert set(per_run.values()) == {1}  # each executed exactly once
    assert {a.status for a in attempts} == {JobStatus.SUCCESS}
    for worker in workers:  # both took part: each submitted some of the runs
        assert "submitting flow run" in worker.log(), worker.log()[-2000:]


@pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_two_sync_processes_at_once_converge(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, database_url: str
) -> None:
    rows = [sync_target.repository.add_schedule(schedule_factory()) for _ in range(20)]
    env = base_env(
        PREFECT_API_URL=sync_target.server.api_url,
        JOBCTL_DATABASE_URL=database_url,
        JOBCTL_WORK_POOL=sync_target.settings.work_pool,
    )
    syncs = [
        subprocess.Popen(
            [JOBCTL, "sync"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    outputs = [sync.communicate(timeout=180)[0].decode() for sync in syncs]

    assert [sync.returncode for sync in syncs] == [0, 0], outputs
    assert set(sync_target.deployments()) == {row.id for row in rows}  # one per row
    assert sync_target.sync().plan.is_noop


REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REPLICAS_ENV_FILE = Path(__file__).parents[2] / "deploy" / "env.replicas"


@contextmanager
def scratch_redis_databases(count: int) -> Iterator[list[int]]:
    """``count`` empty Redis databases, flushed afterwards."""

    def database(number: int) -> redis.Redis:
        return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number)

    chosen = random.sample([n for n in range(1, 16) if database(n).dbsize() == 0], count)
    try:
        yield chosen
    finally:
        for number in chosen:
            database(number).flushdb()


def replica_env(*, messaging_db: int, docket_db: int) -> dict[str, str]:
    """deploy/env.replicas, pointed at this machine's Redis and the given databases."""
    env = dict(
        line.split("=", 1)
        for line in REPLICAS_ENV_FILE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    env["PREFECT_REDIS_MESSAGING_HOST"] = REDIS_HOST
    env["PREFECT_REDIS_MESSAGING_PORT"] = str(REDIS_PORT)
    env["PREFECT_REDIS_MESSAGING_DB"] = str(messaging_db)
    env["PREFECT_SERVER_DOCKET_URL"] = f"redis://{REDIS_HOST}:{REDIS_PORT}/{docket_db}"
    return env


@contextmanager
def replicas_behind_redis(
    home: Path, zygote: Zygote | None = None
) -> Iterator[tuple[PrefectServer, PrefectServer]]:
    """Prefect's documented multi-server set-up: one PostgreSQL database, Redis for
    messaging, leases and Docket, two ``--no-services`` API replicas and one
    ``prefect server services start``."""
    with ExitStack() as stack:
        database = stack.enter_context(scratch_postgres_database())
        messaging_db, docket_db = stack.enter_context(scratch_redis_databases(2))
        shared = replica_env(messaging_db=messaging_db, docket_db=docket_db)
        replicas = tuple(
            PrefectServer(home / name, database=database, services=False, env=shared, zygote=zygote)
            for name in ("replica-a", "replica-b")
        )
        for replica in replicas:
            replica.home.mkdir(parents=True)
        env = replicas[0].server_env()
        subprocess.run(
            [str(PREFECT_BIN), "server", "database", "upgrade", "-y"],
            env=env, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        services = Child(
            [str(PREFECT_BIN), "server", "services", "start"],
            env={**env, "PREFECT_HOME": str(home / "services")},
            log_path=home / "services.log",
        )
        stack.callback(services.stop)
        for replica in replicas:
            stack.callback(replica.stop)
            replica.start()
        yield replicas[0], replicas[1]


def _events_of(replica: PrefectServer, flow_run_ids: list[UUID], event: str) -> set[str]:
    """The flow runs (by resource id) that ``event`` was recorded for, read from one replica."""
    response = httpx.post(
        f"{replica.api_url}/events/filter",
        json={
            "filter": {
                "event": {"name": [event]},
                "resource": {"id": [f"prefect.flow-run.{run_id}" for run_id in flow_run_ids]},
            },
            "limit": 50,
        },
        timeout=10,
    )
    response.raise_for_status()
    return {item["resource"]["prefect.resource.id"] for item in response.json()["events"]}


@pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_two_api_replicas_and_one_services_process_work_as_one_server_through_redis(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
    tmp_path: Path,
    zygote: Zygote,
) -> None:
    repository = sync_target.repository
    queued = repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, param=["x"], overlap="queue", max_retries=0)
    )
    every_minute = repository.add_schedule(schedule_factory(cron="* * * * *", param=["y"]))

    with replicas_behind_redis(tmp_path / "prefect", zygote) as (replica_a, replica_b):
        on_a = SyncTarget(sync_target.settings, repository, replica_a)
        with temporary_settings(updates={PREFECT_API_URL: replica_a.api_url}):
            on_a.sync()
            deployments = on_a.deployments()
            # The worker polls replica B; its flow processes report to replica A, so each
            # run's concurrency lease is taken on B (Pending) and renewed and released on A.
            run_ids = asyncio.run(
                _create_runs(
                    deployments[queued.id].id,
                    3,
                    job_variables={"env": {"PREFECT_API_URL": replica_a.api_url}},
                )
            )
        start_worker(sync_target.settings.work_pool, database_url=database_url, server=replica_b)

        with temporary_settings(updates={PREFECT_API_URL: replica_b.api_url}):
            wait_for(
                lambda: asyncio.run(_completed(run_ids)) == len(run_ids),
                timeout_s=240,
                interval_s=2,
                what="three queued runs completed across the replicas",
            )
            # The services process schedules the rows synced through replica A.
            wait_for(
                lambda: asyncio.run(_scheduled_runs(deployments[every_minute.id].id)),
                timeout_s=60,
                interval_s=1,
                what="the services process's scheduler",
            )
        # Replica A took the Completed transitions; their events went through Redis to the
        # services process, which stored them; replica B reads them.
        wait_for(
            lambda: (
                _events_of(replica_b, run_ids, "prefect.flow-run.Completed")
                == {f"prefect.flow-run.{run_id}" for run_id in run_ids}
            ),
            timeout_s=60,
            interval_s=1,
            what="Completed events of every run, read through the other replica",
        )

    attempts = sorted(
        repository.list_history(HistoryFilter(schedule_id=queued.id, limit=10)),
        key=lambda attempt: attempt.start_at,
    )
    assert sorted(a.flow_run_id for a in attempts) == sorted(map(str, run_ids))
    assert {a.status for a in attempts} == {JobStatus.SUCCESS}
    for earlier, later in pairwise(attempts):
        assert earlier.end_at is not None
        assert later.start_at >= earlier.end_at  # overlap "queue": one at a time


async def _create_runs(deployment_id: UUID, count: int, **kwargs: Any) -> list[UUID]:
    async with get_client() as client:
        at_once = asyncio.Semaphore(10)

        async def one() -> UUID:
            async with at_once:
                return (await client.create_flow_run_from_deployment(deployment_id, **kwargs)).id

        return list(await asyncio.gather(*(one() for _ in range(count))))


async def _completed(run_ids: list[UUID]) -> int:
    """How many of the runs are Completed (a count: polled every 2 s, it reads no run)."""
    async with get_client() as client:
        return await client.count_flow_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=run_ids),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED])),
            )
        )


async def _scheduled_runs(deployment_id: UUID) -> list[UUID]:
    async with get_client() as client:
        runs = await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            ),
        )
        return [run.id for run in runs]
