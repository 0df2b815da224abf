"""The maintenance pause against a real Prefect server: the sync keeps every deployment
paused while it is on, resumes exactly the active rows, catches each up once; the watcher
applies a pause at once and ends one whose ``until`` passed by itself."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun
from sqlalchemy import text

from deployments.catch_up import CATCH_UP_TAG
from deployments.plan import Action
from jobctl.repository import Repository
from tests.conftest import ScheduleFactory
from tests.fixtures.processes import wait_for
from tests.fixtures.sync import RequestLog, SyncTarget
from tests.integration.test_watch import running_watcher

# Prefect's behaviour is under test here, the tables in test_maintenance: PostgreSQL only
# (whose NOTIFY also wakes the watcher at once).
pytestmark = pytest.mark.parametrize(
    "database_url", ["postgresql"], ids=["postgres"], indirect=True
)

NEVER_DUE = "0 0 1 1 *"
EVERY_MINUTE = "* * * * *"


def catch_up_runs(deployment_ids: list[UUID]) -> list[FlowRun]:
    async def read() -> list[FlowRun]:
        async with get_client() as client:
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids)),
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[CATCH_UP_TAG])),
            )

    return asyncio.run(read())


def _backdate_pause(repository: Repository, minutes: int) -> None:
    """The open pause began ``minutes`` ago: fire times fell due during it."""
    with repository.engine.begin() as connection:
        connection.execute(
            text('UPDATE jobctl_maintenance SET "startedAt" = :at WHERE "endedAt" IS NULL'),
            {"at": datetime.now(UTC) - timedelta(minutes=minutes)},
        )


def test_a_pause_keeps_every_deployment_paused_and_resume_restores_exactly_the_active_rows(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    repo = sync_target.repository
    active = [repo.add_schedule(schedule_factory(cron=EVERY_MINUTE)) for _ in range(2)]
    edited = repo.add_schedule(schedule_factory(cron=NEVER_DUE))
    disabled = repo.add_schedule(schedule_factory(cron=EVERY_MINUTE, is_active=False))
    # Created well before the pause, so that its fire times count.
    with repo.engine.begin() as connection:
        connection.execute(
            text('UPDATE "JobSchedule" SET "createdAt" = :at'),
            {"at": datetime.now(UTC) - timedelta(hours=1)},
        )
    sync_target.sync()
    running = [r.id for r in (*active, edited)]

    repo.start_maintenance(reason="db upgrade", set_by="ops", until=None, now=datetime.now(UTC))
    paused = sync_target.sync()
    log = RequestLog()
    unchanged = asyncio.run(sync_target.sync_async(log=log))

    assert {s.schedule_id: s.action for s in paused.plan.steps} == {
        **dict.fromkeys(running, Action.PAUSE),
        disabled.id: Action.UNCHANGED,
    }
    assert paused.maintenance is not None and "maintenance pause on" in paused.summary()
    assert unchanged.plan.is_noop and log.writes == []
    assert all(d.paused for d in sync_target.deployments().values())

    repo.update_schedule(edited.id, cron=EVERY_MINUTE)
    during_edit = sync_target.sync()

    assert [(s.schedule_id, s.action) for s in during_edit.plan.writes] == [
        (edited.id, Action.UPDATE)
    ]
    deployment = sync_target.deployments()[edited.id]
    assert deployment.paused
    assert deployment.schedules[0].schedule.cron == EVERY_MINUTE  # type: ignore[union-attr]
    assert {r.id: r.is_active for r in repo.list_schedules()} == {
        **dict.fromkeys(running, True),
        disabled.id: False,
    }

    _backdate_pause(repo, minutes=3)
    repo.end_maintenance(ended_by="ops", now=datetime.now(UTC))
    resumed = sync_target.sync()
    again = sync_target.sync()

    assert {s.schedule_id: s.action for s in resumed.plan.steps} == {
        **dict.fromkeys(running, Action.RESUME),
        disabled.id: Action.UNCHANGED,
    }
    deployments = sync_target.deployments()
    assert {i: d.paused for i, d in deployments.items()} == {
        **dict.fromkeys(running, False),
        disabled.id: True,
    }
    assert resumed.caught_up == 3 and again.caught_up == 0
    runs = catch_up_runs([d.id for d in deployments.values()])
    assert sorted(str(run.deployment_id) for run in runs) == sorted(
        str(deployments[i].id) for i in running
    )


def test_catch_ups_are_asked_for_once_even_if_the_pause_was_not_marked_caught_up(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    repo = sync_target.repository
    row = repo.add_schedule(schedule_factory(cron=EVERY_MINUTE))
    with repo.engine.begin() as connection:
        connection.execute(
            text('UPDATE "JobSchedule" SET "createdAt" = :at'),
            {"at": datetime.now(UTC) - timedelta(hours=1)},
        )
    repo.start_maintenance(reason="x", set_by="ops", until=None, now=datetime.now(UTC))
    _backdate_pause(repo, minutes=2)
    sync_target.sync()
    repo.end_maintenance(ended_by="ops", now=datetime.now(UTC))

    first = sync_target.sync()
    # A sync that died before marking the pause caught up: the next one asks again.
    with repo.engine.begin() as connection:
        connection.execute(text('UPDATE jobctl_maintenance SET "caughtUpAt" = NULL'))
    second = sync_target.sync()

    assert first.caught_up == second.caught_up == 1
    assert len(catch_up_runs([sync_target.deployments()[row.id].id])) == 1


def test_the_watcher_pauses_at_once_and_resumes_by_itself_when_until_passes(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    repo = sync_target.repository
    on = repo.add_schedule(schedule_factory(cron=NEVER_DUE))
    off = repo.add_schedule(schedule_factory(cron=NEVER_DUE, is_active=False))
    # A long interval: only NOTIFY and the pause's own end can wake the watcher in time.
    settings = sync_target.settings.model_copy(update={"watch_interval_s": 60.0})

    with running_watcher(settings, repo) as watcher:
        wait_for(lambda: len(sync_target.deployments()) == 2, timeout_s=60, what="first sync")
        until = datetime.now(UTC) + timedelta(seconds=8)
        repo.start_maintenance(reason="x", set_by="ops", until=until, now=datetime.now(UTC))
        wait_for(
            lambda: all(d.paused for d in sync_target.deployments().values()),
            timeout_s=6,
            what="every deployment paused",
        )
        resumed = wait_for(
            lambda: not (d := sync_target.deployments())[on.id].paused and d,
            timeout_s=30,
            interval_s=0.5,
            what="the active row resumed by itself",
        )
        resumed_at = datetime.now(UTC)

    assert watcher.errors == []
    assert resumed[off.id].paused
    assert resumed_at - until < timedelta(seconds=10)
    assert repo.get_maintenance_or_none() is None
    (ended,) = repo.list_maintenance(ended_after=until - timedelta(hours=1))
    assert (ended.ended_at, ended.ended_by) == (until, "until")
