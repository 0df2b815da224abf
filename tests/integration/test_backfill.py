"""Backfill against a real Prefect server, no worker: what it creates, and what it refuses.

The runs themselves, on a worker, are in ``tests/e2e/test_backfill.py``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
from prefect.client.schemas.objects import FlowRun

from jobctl import backfill_plan, errors, run_origins
from jobctl.api.app import create_app
from jobctl.models import JobStatus
from jobctl.prefect import backfill
from jobctl.prefect.gateway.client import connect
from jobctl.records import HistoryFilter
from tests.conftest import ScheduleFactory
from tests.fixtures.api import TOKEN, ApiClient
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.processes import wait_for
from tests.fixtures.sync import SyncTarget

pytestmark = pytest.mark.usefixtures("prefect_server")

BERLIN = ZoneInfo("Europe/Berlin")
# The spring-forward night of 2026 in Berlin: 23 local hours.
NIGHT = (datetime(2026, 3, 29, tzinfo=BERLIN), datetime(2026, 3, 30, tzinfo=BERLIN))
HOURLY_BERLIN = {"cron": "0 * * * *", "timezone": "Europe/Berlin"}


def _runs_of(target: SyncTarget, schedule_id: str) -> list[FlowRun]:
    deployment = target.deployments()[schedule_id]

    async def read() -> list[FlowRun]:
        async with get_client() as client:
            return await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id])
                )
            )

    return asyncio.run(read())


def _env(target: SyncTarget, tmp_path: Path) -> dict[str, str]:
    return cli_env(
        database_url=target.settings.database_url,
        home=tmp_path,
        pycache=tmp_path / "pycache",
        PREFECT_API_URL=target.server.api_url,
        JOBCTL_WORK_POOL=target.settings.work_pool,
    )


def test_dry_run_lists_the_fire_times_and_creates_no_run(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, tmp_path: Path
) -> None:
    row = sync_target.repository.add_schedule(schedule_factory(**HOURLY_BERLIN))
    sync_target.sync()

    result = run_cli(
        "backfill", row.id, "--from", NIGHT[0].isoformat(), "--to", NIGHT[1].isoformat(),
        "--dry-run", env=_env(sync_target, tmp_path),
    )  # fmt: skip

    lines = result.stdout.splitlines()
    assert lines[0] == (
        "23 fire time(s) of '0 * * * *' in Europe/Berlin, 2026-03-28T23:00:00Z to "
        "2026-03-29T22:00:00Z (dry run: nothing runs)"
    )
    assert lines[1:4] == [
        "2026-03-29 00:00 CET  (2026-03-28T23:00:00Z)",
        "2026-03-29 01:00 CET  (2026-03-29T00:00:00Z)",
        "2026-03-29 03:00 CEST  (2026-03-29T01:00:00Z)",
    ]
    assert len(lines) == 1 + 23
    # Prefect's scheduler plans the row's future runs; nothing else was created.
    assert [run for run in _runs_of(sync_target, row.id) if not run.auto_scheduled] == []


def test_a_range_with_too_many_fire_times_is_refused_with_a_clear_message(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, tmp_path: Path
) -> None:
    row = sync_target.repository.add_schedule(schedule_factory(**HOURLY_BERLIN))

    result = run_cli(
        "backfill", row.id, "--from", NIGHT[0].isoformat(), "--to", NIGHT[1].isoformat(),
        "--max-runs", "22", env=_env(sync_target, tmp_path), expect_rc=1,
    )  # fmt: skip

    assert result.stderr == (
        "error: the range 2026-03-28T23:00:00Z to 2026-03-29T22:00:00Z holds more than 22 "
        "fire times of '0 * * * *' in Europe/Berlin: narrow it, or raise the limit "
        "(--max-runs, maxRuns)\n"
    )


def test_a_disabled_or_unsynced_row_is_refused(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    disabled = sync_target.repository.add_schedule(
        schedule_factory(**HOURLY_BERLIN, is_active=False)
    )
    unsynced = sync_target.repository.add_schedule(schedule_factory(**HOURLY_BERLIN))
    zone = sync_target.settings.timezone

    with pytest.raises(errors.BackfillRefused, match="is disabled"):
        backfill.plan(sync_target.repository, disabled.id, *NIGHT, default_timezone=zone)
    work = backfill.plan(sync_target.repository, unsynced.id, *NIGHT, default_timezone=zone)

    async def execute() -> None:
        async with connect() as gateway:
            await backfill.execute(work, gateway, sync_target.repository, wait=False)

    with pytest.raises(errors.BackfillRefused, match=r"has no deployment .* run `jobctl sync`"):
        asyncio.run(execute())


def test_each_run_is_scheduled_at_its_fire_time_once_however_often_it_is_backfilled(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, tmp_path: Path
) -> None:
    row = sync_target.repository.add_schedule(
        schedule_factory(cron="0 */6 * * *", timezone="Europe/Berlin", overlap="allow")
    )
    sync_target.sync()
    start, end = datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 29, 12, tzinfo=UTC)
    work = backfill.plan(
        sync_target.repository, row.id, start, end, default_timezone=sync_target.settings.timezone
    )

    async def execute() -> list[backfill.BackfillRun]:
        async with connect() as gateway:
            return await backfill.execute(work, gateway, sync_target.repository, wait=False)

    first = asyncio.run(execute())
    again = asyncio.run(execute())

    # Berlin's 06, 12, 18 (CET) of the 28th, then 00, and 06 and 12 of the 29th (CEST).
    assert [r.fire_time.astimezone(UTC).hour for r in first] == [5, 11, 17, 23, 4, 10]
    assert [r.flow_run_id for r in again] == [r.flow_run_id for r in first]
    created = {str(run.id): run for run in _runs_of(sync_target, row.id) if not run.auto_scheduled}
    assert set(created) == {r.flow_run_id for r in first}
    for item in first:
        run = created[item.flow_run_id]
        assert run.expected_start_time == item.fire_time
        assert backfill_plan.tag(start, end) in run.tags
        assert run.parameters == {"param": row.param}
    assert run_origins.logical_times(sync_target.repository, row.id) == {
        r.flow_run_id: r.fire_time for r in first
    }
    # An attempt of one of these runs shows where it came from.
    sync_target.repository.start_attempt(
        flow_run_id=first[0].flow_run_id, attempt=1, job_name=row.job_name, param=None,
        schedule_id=row.id,
    )  # fmt: skip
    [attempt] = sync_target.repository.list_history(HistoryFilter(schedule_id=row.id))
    assert attempt.status is JobStatus.PROCESSING
    assert attempt.origin == "backfill 2026-03-28T00:00:00Z/2026-03-29T12:00:00Z"
    assert sync_target.repository.get_attempt(attempt.id).origin == attempt.origin
    env = _env(sync_target, tmp_path)
    listed = run_cli("history", "--schedule", row.id, env=env).stdout
    shown = run_cli("history", "show", str(attempt.id), env=env).stdout
    assert f"{row.id[:8]} backfill" in listed
    assert "backfill 2026-03-28T00:00:00Z/2026-03-29T12:00:00Z" in shown


# -- POST /v1/job/schedules/{id}/backfill -------------------------------------------------


def _api(target: SyncTarget) -> ApiClient:
    settings = target.settings.model_copy(update={"api_token": TOKEN})
    return ApiClient(create_app(settings), secrets=(settings.database_url, TOKEN))


def _body(start: datetime, end: datetime, **extra: object) -> dict[str, object]:
    return {"from": start.isoformat(), "to": end.isoformat(), **extra}


def test_the_api_lists_the_fire_times_of_a_dry_run_and_refuses_too_many(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    row = sync_target.repository.add_schedule(schedule_factory(**HOURLY_BERLIN))
    sync_target.sync()
    api = _api(sync_target)
    path = f"/v1/job/schedules/{row.id}/backfill"

    dry = api.post(path, json=_body(*NIGHT, dryRun=True))
    too_many = api.post(path, json=_body(*NIGHT, maxRuns=22))
    unknown = api.post(f"/v1/job/schedules/{uuid4()}/backfill", json=_body(*NIGHT))

    assert dry.status_code == 200, dry.text
    answer = dry.json()
    assert (answer["cron"], answer["timezone"], answer["dryRun"]) == (
        "0 * * * *", "Europe/Berlin", True,
    )  # fmt: skip
    assert answer["origin"] == "backfill 2026-03-28T23:00:00Z/2026-03-29T22:00:00Z"
    assert len(answer["fireTimes"]) == 23
    assert answer["fireTimes"][1:3] == ["2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z"]
    assert too_many.status_code == 422
    assert "holds more than 22 fire times" in too_many.json()["detail"]
    assert unknown.status_code == 404
    assert [run for run in _runs_of(sync_target, row.id) if not run.auto_scheduled] == []


def test_the_api_creates_one_run_per_fire_time_in_the_background(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    row = sync_target.repository.add_schedule(
        schedule_factory(cron="0 */6 * * *", timezone="Europe/Berlin", overlap="allow")
    )
    sync_target.sync()
    start, end = datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 29, 12, tzinfo=UTC)

    response = _api(sync_target).post(
        f"/v1/job/schedules/{row.id}/backfill", json=_body(start, end)
    )

    assert response.status_code == 202, response.text
    fire_times = [datetime.fromisoformat(t) for t in response.json()["fireTimes"]]
    assert len(fire_times) == 6

    def created() -> list[FlowRun] | None:
        runs = [run for run in _runs_of(sync_target, row.id) if not run.auto_scheduled]
        return runs if len(runs) == len(fire_times) else None

    runs = wait_for(created, timeout_s=30, what="the backfill's runs")
    assert sorted(run.expected_start_time for run in runs) == fire_times  # type: ignore[type-var]
