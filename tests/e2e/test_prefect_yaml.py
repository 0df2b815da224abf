"""`prefect deploy --all` deploys the static flows, and `sync-schedules` syncs on a worker."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.objects import Deployment

from flows.sync_schedules import ARTIFACT_KEY
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.conftest import ScheduleFactory
from tests.e2e.test_runs import _wait_final
from tests.fixtures.prefect import WARM, WorkerFactory, running_prefect_server
from tests.fixtures.prefect_server import PREFECT_BIN, PrefectServer
from tests.fixtures.processes import base_env, wait_for
from tests.fixtures.sync import SyncTarget
from tests.fixtures.zygote import Zygote

PROJECT_DIR = Path(__file__).resolve().parents[2]
POOL = "jobctl"  # the pool prefect.yaml names


def _prefect(server: PrefectServer, *args: str) -> None:
    done = subprocess.run(
        [str(PREFECT_BIN), *args],
        cwd=PROJECT_DIR,
        env=base_env(PREFECT_API_URL=server.api_url),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _read_deployment(name: str) -> Deployment:
    async def read() -> Deployment:
        async with get_client() as client:
            return await client.read_deployment_by_name(name)

    return asyncio.run(read())


@pytest.fixture
def own_server(tmp_path: Path, zygote: Zygote) -> Iterator[PrefectServer]:
    """A server of this test's own: prefect.yaml names its pool and its deployments
    (`sync-schedules/every-minute` every minute), which would stay on the shared server
    and move between the pools of other tests deploying it (`jobctl up`'s)."""
    home = tmp_path / "prefect"
    home.mkdir()
    with running_prefect_server(home, zygote) as server:
        yield server


@pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_prefect_deploy_all_deploys_the_static_flows_and_the_sync_runs_on_a_worker(
    own_server: PrefectServer,
    database_url: str,
    repo: Repository,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
) -> None:
    # Prefect checks the pool before running any step of prefect.yaml, so the pool comes
    # first, as the README says.
    _prefect(own_server, "work-pool", "create", POOL, "--type", WARM, "--overwrite")
    _prefect(own_server, "--no-prompt", "deploy", "--all")

    sync_deployment = _read_deployment("sync-schedules/every-minute")
    purge_deployment = _read_deployment("purge-history/daily")
    assert sync_deployment.work_pool_name == POOL
    assert sync_deployment.schedules[0].schedule.cron == "* * * * *"  # type: ignore[union-attr]
    assert purge_deployment.work_pool_name == POOL
    assert sync_deployment.concurrency_options is not None

    rows = [repo.add_schedule(schedule_factory()) for _ in range(2)]
    start_worker(POOL, database_url=database_url, server=own_server)

    async def run_sync() -> object:
        async with get_client() as client:
            return (await client.create_flow_run_from_deployment(sync_deployment.id)).id

    def a_sync_run_completes() -> bool:
        run = _wait_final(asyncio.run(run_sync()))  # type: ignore[arg-type]
        assert run.state is not None
        if run.state.is_cancelled() and "concurrency limit" in (run.state.message or ""):
            return False  # the every-minute run was in progress: its overlap policy skips ours
        assert run.state.is_completed(), run.state
        return True

    wait_for(a_sync_run_completes, timeout_s=240, interval_s=2, what="a sync-schedules run")

    target = SyncTarget(Settings(database_url=database_url, work_pool=POOL), repo, own_server)
    assert set(target.deployments()) >= {row.id for row in rows}

    async def read_artifacts() -> list[object]:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY]))
            )

    artifacts = asyncio.run(read_artifacts())
    assert artifacts and "Schedule sync" in str(artifacts[0].data)  # type: ignore[attr-defined]
