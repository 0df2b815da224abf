"""A backfill on a real Prefect server, a warm worker and PostgreSQL tables."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
from prefect.client.schemas.objects import FlowRun

from jobctl import backfill_plan, run_origins
from jobctl.models import JobStatus
from jobctl.records import HistoryFilter
from tests.conftest import ScheduleFactory
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.prefect import WorkerFactory
from tests.fixtures.processes import wait_for
from tests.fixtures.sync import SyncTarget

pytestmark = pytest.mark.parametrize(
    "database_url", ["postgresql"], ids=["postgres"], indirect=True
)

BERLIN = ZoneInfo("Europe/Berlin")
# The spring-forward night of 2026 in Berlin: 02:00 CET became 03:00 CEST, 23 local hours.
NIGHT = (datetime(2026, 3, 29, tzinfo=BERLIN), datetime(2026, 3, 30, tzinfo=BERLIN))
ORIGIN = "backfill 2026-03-28T23:00:00Z/2026-03-29T22:00:00Z"
SCHEDULER_ITERATIONS_S = 15  # three of the tests' Prefect scheduler loops


def _runs_of(deployment_id: UUID) -> list[FlowRun]:
    async def read() -> list[FlowRun]:
        async with get_client() as client:
            return await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])
                )
            )

    return asyncio.run(read())


def _without_its_cron_runs(target: SyncTarget, schedule_id: str) -> UUID:
    """The row's deployment with its schedule switched off and its planned runs deleted:
    only the backfill's runs run during the test, whatever the time of day.

    Prefect's schedulers read a deployment's schedules, then insert the runs in another
    transaction: an iteration that read them before the switch-off inserts its runs after
    it (CI, 06:00 UTC: three hourly runs, the first due at once). So the runs are deleted
    until none has come for longer than a few iterations (5 s loops on the tests' server)."""
    deployment = target.deployments()[schedule_id]

    async def switch_off() -> None:
        async with get_client() as client:
            for schedule in deployment.schedules:
                await client.update_deployment_schedule(deployment.id, schedule.id, active=False)

    async def delete(runs: list[FlowRun]) -> None:
        async with get_client() as client:
            for run in runs:
                await client.delete_flow_run(run.id)

    asyncio.run(switch_off())
    last_seen = time.monotonic()

    def none_for_a_while() -> bool:
        nonlocal last_seen
        if runs := _runs_of(deployment.id):
            asyncio.run(delete(runs))
            last_seen = time.monotonic()
        return time.monotonic() - last_seen > SCHEDULER_ITERATIONS_S

    wait_for(none_for_a_while, timeout_s=120, interval_s=1, what="no run of the row's cron")
    return deployment.id


def test_backfill_of_the_spring_forward_night_runs_each_hour_once_at_its_time_one_at_a_time(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    row = sync_target.repository.add_schedule(
        schedule_factory(
            cron="0 * * * *", timezone="Europe/Berlin", job_name="dailyReport",
            param={"ledger": str(ledger), "timezone": "Europe/Berlin"},
            overlap="skip", max_retries=0, timeout_ms=0,
        )
    )  # fmt: skip
    sync_target.sync()
    deployment_id = _without_its_cron_runs(sync_target, row.id)
    env = cli_env(
        database_url=database_url, home=tmp_path, pycache=tmp_path / "pycache",
        PREFECT_API_URL=sync_target.server.api_url, JOBCTL_WORK_POOL=sync_target.settings.work_pool,
    )  # fmt: skip
    backfill = ("backfill", row.id, "--from", NIGHT[0].isoformat(), "--to", NIGHT[1].isoformat())
    start_worker(sync_target.settings.work_pool, database_url=database_url)

    dry = run_cli(*backfill, "--dry-run", env=env)
    assert dry.stdout.startswith("23 fire time(s)")
    assert _runs_of(deployment_id) == []  # the worker is up: a run would have been created

    result = run_cli(*backfill, env=env)

    assert result.stdout.splitlines()[-1] == "23 run(s): 23 Completed", result.stdout
    fire_times = backfill_plan.fire_times(
        "0 * * * *", "Europe/Berlin", *NIGHT, now=datetime.now(UTC)
    )
    # One attempt per existing local hour, each from the backfill, never two at once.
    attempts = sorted(
        sync_target.repository.list_history(HistoryFilter(schedule_id=row.id)),
        key=lambda attempt: attempt.start_at,
    )
    assert len(attempts) == 23
    assert {(a.status, a.attempt, a.origin) for a in attempts} == {(JobStatus.SUCCESS, 1, ORIGIN)}
    for previous, following in itertools.pairwise(attempts):
        assert previous.end_at is not None and following.start_at >= previous.end_at
    # Prefect records each run at its fire time, and each job saw that time.
    logical = run_origins.logical_times(sync_target.repository, row.id)
    assert set(logical) == {str(a.flow_run_id) for a in attempts}
    runs = {str(run.id): run for run in _runs_of(deployment_id)}
    assert set(runs) == set(logical)
    assert sorted(runs[run_id].expected_start_time for run_id in logical) == fire_times  # type: ignore[type-var]
    reports = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert sorted(datetime.fromisoformat(r["scheduledFor"]) for r in reports) == fire_times
    assert {r["day"] for r in reports} == {"2026-03-28"}  # the day before the night's date

    # Backfilling the night again runs nothing twice.
    again = run_cli(*backfill, env=env)

    assert again.stdout.splitlines()[-1] == "23 run(s): 23 Completed"
    assert len(_runs_of(deployment_id)) == 23
    assert len(ledger.read_text().splitlines()) == 23
