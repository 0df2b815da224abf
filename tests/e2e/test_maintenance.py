"""A maintenance pause end to end: a real Prefect server, a warm worker, PostgreSQL tables,
``jobctl sync --watch`` as a process and ``jobctl pause --all --until 90s``.

Three active rows and a disabled one; one row edited during the pause. When the pause
ends by itself, the same three run again (the edited one on its new cron), the disabled
one does not, no run is made for a fire time inside the pause, and each row catches up
exactly once. The shorter checks, without a worker, run in the default suite
(tests/integration/test_maintenance_sync.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun

from deployments.catch_up import CATCH_UP_TAG
from jobctl.records import HistoryFilter
from tests.conftest import ScheduleFactory
from tests.e2e.test_misfire import _backfill
from tests.e2e.test_runs import _wait_final
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.prefect import WorkerFactory
from tests.fixtures.processes import wait_for
from tests.fixtures.sync import JobctlFactory, SyncTarget

EVERY_MINUTE = "* * * * *"
NEVER_DUE = "0 0 1 1 *"
PAUSE_S = 90


def _runs_of(deployment_ids: list[UUID]) -> list[FlowRun]:
    async def read() -> list[FlowRun]:
        async with get_client() as client:
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids))
            )

    return asyncio.run(read())


@pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_a_scheduled_run_that_starts_during_a_pause_skips_itself(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    """Prefect's scheduler can insert a run just as a deployment is paused (a batch read
    before the pause): such a run must not run during the maintenance.

    The deployment is paused from its creation, so that the run this test slips in is its
    only one: a run the scheduler really slipped in would be due at a later minute, and,
    started with this one, would take the deployment's one slot (overlap "skip") and
    leave this one cancelled by Prefect's concurrency limit rather than by the guard."""
    repo = sync_target.repository
    row = repo.add_schedule(
        schedule_factory(cron=EVERY_MINUTE, misfire_grace_ms=600_000, max_retries=0)
    )
    repo.start_maintenance(reason="e2e guard", set_by="ops", until=None, now=datetime.now(UTC))
    assert sync_target.sync().maintenance is not None
    deployment = sync_target.deployments()[row.id]
    assert deployment.paused
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    # A run made exactly as the scheduler makes them, for the last minute boundary.
    (slipped,) = _backfill(deployment.id, minute - timedelta(seconds=1), minute)
    assert [r.id for r in _runs_of([deployment.id])] == [slipped.id]

    start_worker(sync_target.settings.work_pool, database_url=database_url)
    run = _wait_final(slipped.id)

    assert run.state is not None and run.state.is_cancelled() and run.state.name == "Skipped"
    assert "e2e guard" in (run.state.message or "")
    assert repo.list_history(HistoryFilter(schedule_id=row.id)) == []


@pytest.mark.slow  # about three minutes: the pause is 90 s, then a minute boundary
@pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_a_maintenance_pause_until_90s_resumes_the_active_rows_each_caught_up_once(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    jobctl_for: Callable[[SyncTarget], JobctlFactory],
    database_url: str,
    tmp_path: Path,
) -> None:
    repo = sync_target.repository
    row = {"job_name": "processData", "param": ["e2e"], "max_retries": 0, "overlap": "allow"}
    active = [repo.add_schedule(schedule_factory(cron=EVERY_MINUTE, **row)) for _ in range(2)]
    edited = repo.add_schedule(schedule_factory(cron=NEVER_DUE, **row))
    disabled = repo.add_schedule(schedule_factory(cron=EVERY_MINUTE, is_active=False, **row))
    three = [r.id for r in (*active, edited)]
    start_worker(sync_target.settings.work_pool, database_url=database_url)
    jobctl_for(sync_target)("sync", "--watch")
    wait_for(lambda: len(sync_target.deployments()) == 4, timeout_s=90, what="the first sync")
    env = cli_env(database_url=database_url, home=tmp_path, pycache=tmp_path / "pycache")

    run_cli("pause", "--all", "--reason", "e2e upgrade", "--until", f"{PAUSE_S}s", env=env)
    pause = repo.get_maintenance_or_none()
    assert pause is not None and pause.until is not None
    wait_for(
        lambda: all(d.paused for d in sync_target.deployments().values()),
        timeout_s=10,
        what="every deployment paused",
    )
    status_line = run_cli("status", env=env).stdout
    assert "MAINTENANCE" in status_line and "e2e upgrade" in status_line

    repo.update_schedule(edited.id, cron=EVERY_MINUTE)
    wait_for(
        lambda: (
            (d := sync_target.deployments()[edited.id]).paused
            and d.schedules[0].schedule.cron == EVERY_MINUTE
        ),  # type: ignore[union-attr]
        timeout_s=10,
        what="the edit synced, still paused",
    )

    # The pause ends by itself at its until: the active rows resume, the disabled one not.
    resumed = wait_for(
        lambda: not any((d := sync_target.deployments())[i].paused for i in three) and d,
        timeout_s=PAUSE_S + 30,
        interval_s=1,
        what="the pause ended by itself",
    )
    assert timedelta(seconds=-1) < datetime.now(UTC) - pause.until < timedelta(seconds=15)
    assert resumed[disabled.id].paused
    (ended,) = repo.list_maintenance(ended_after=pause.started_at - timedelta(seconds=1))
    assert (ended.ended_at, ended.ended_by) == (pause.until, "until")

    # Each of the three: its catch-up, then a run of its cron (a minute boundary).
    ids = {i: resumed[i].id for i in (*three, disabled.id)}

    def ran_again() -> list[FlowRun] | None:
        runs = _runs_of(list(ids.values()))
        scheduled_after = {
            r.deployment_id
            for r in runs
            if r.auto_scheduled
            and r.expected_start_time is not None
            and r.expected_start_time > pause.until  # type: ignore[operator]
            and r.state is not None
            and r.state.is_completed()
        }
        return runs if {ids[i] for i in three} <= scheduled_after else None

    runs = wait_for(ran_again, timeout_s=150, interval_s=2, what="a scheduled run of each row")

    catch_ups = [r for r in runs if CATCH_UP_TAG in r.tags]
    assert sorted(str(r.deployment_id) for r in catch_ups) == sorted(str(ids[i]) for i in three)
    assert all(r.state is not None and r.state.is_completed() for r in catch_ups)
    assert not [r for r in runs if r.deployment_id == ids[disabled.id]]
    # No fire time inside the pause ran: Prefect made no run for it, or (a run its
    # scheduler slipped in as the pause began) the run skipped itself.
    inside = [
        r
        for r in runs
        if r.expected_start_time is not None
        and pause.started_at + timedelta(seconds=5) < r.expected_start_time < pause.until
    ]
    assert all(r.state is not None and r.state.name == "Skipped" for r in inside), inside
    during = repo.list_history(
        HistoryFilter(since=pause.started_at + timedelta(seconds=5), until=pause.until)
    )
    assert during == []
    after = HistoryFilter(since=pause.until)
    attempts = repo.list_history(after)
    assert {a.schedule_id for a in attempts} == set(three)
    assert {a.flow_run_id for a in attempts} >= {str(r.id) for r in catch_ups}
