"""Failure alerts end to end: a real Prefect server and process worker, a real
``custom-webhook`` notification block, and a local HTTP receiver standing in for the
webhook."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.events.actions import DoNothing
from prefect.events.schemas.automations import Automation, AutomationCore, EventTrigger
from prefect.states import AwaitingRetry, Crashed
from sqlalchemy import text

from jobctl.prefect import alerts
from jobctl.prefect.alerts import AlertReport
from jobctl.prefect.gateway.client import ClientGateway
from tests.conftest import ScheduleFactory
from tests.fixtures.http_target import HttpTarget
from tests.fixtures.prefect import WorkerFactory
from tests.fixtures.processes import wait_for
from tests.fixtures.sync import SyncTarget

pytestmark = pytest.mark.parametrize(
    "database_url", ["postgresql"], ids=["postgres"], indirect=True
)

NEVER_DUE = "0 0 1 1 *"  # runs are created on demand
RUN_TIMEOUT_S = 120
ALERT_TIMEOUT_S = 60
# After the last run ended and the expected alert arrived: how long an unexpected
# one has to show up (Prefect delivers in 0.1-0.5 s).
QUIET_S = 8


def _run_now(target: SyncTarget, schedule_id: str) -> UUID:
    deployment = target.deployments()[schedule_id]

    async def create() -> UUID:
        async with get_client() as client:
            return (await client.create_flow_run_from_deployment(deployment.id)).id

    return asyncio.run(create())


def _wait_final(run_id: UUID) -> FlowRun:
    async def read() -> FlowRun:
        async with get_client() as client:
            return await client.read_flow_run(run_id)

    def final() -> FlowRun | None:
        run = asyncio.run(read())
        return run if run.state is not None and run.state.is_final() else None

    return wait_for(final, timeout_s=RUN_TIMEOUT_S, interval_s=0.5, what=f"run {run_id} final")


def _sync_alerts(target: SyncTarget) -> AlertReport:
    async def run() -> AlertReport:
        async with get_client() as client:
            gateway = ClientGateway(client)
            return await alerts.sync_alerts(target.settings, target.repository, gateway)

    return asyncio.run(run())


def _rejections(target: SyncTarget) -> dict[str, str]:
    async def run() -> dict[str, str]:
        async with get_client() as client:
            gateway = ClientGateway(client)
            return await alerts.rejections(target.settings, target.repository, gateway)

    return asyncio.run(run())


def _automations() -> list[Automation]:
    async def read() -> list[Automation]:
        async with get_client() as client:
            return await client.read_automations()

    return asyncio.run(read())


def _create_users_automation(name: str) -> UUID:
    async def create() -> UUID:
        async with get_client() as client:
            return await client.create_automation(
                AutomationCore(
                    name=name,
                    trigger=EventTrigger(expect={"never.happens"}, within=timedelta(0)),
                    actions=[DoNothing()],
                )
            )

    return asyncio.run(create())


def _set_alert_to(target: SyncTarget, schedule_id: str, slug: str | None) -> None:
    with target.repository.engine.begin() as connection:
        connection.execute(
            text('UPDATE "JobSchedule" SET "alertTo" = :slug WHERE id = :id'),
            {"slug": slug, "id": schedule_id},
        )


def _webhook_block(http_target: HttpTarget) -> str:
    name = f"oncall-{uuid.uuid4().hex[:8]}"
    block = CustomWebhookNotificationBlock(
        name="jobctl test receiver",
        url=http_target.url("/alerts"),
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    )
    block.save(name)
    return f"custom-webhook/{name}"


def test_one_alert_for_a_run_that_finally_failed_and_none_for_one_that_succeeded_on_retry(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    http_target: HttpTarget,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    slug = _webhook_block(http_target)
    repository = sync_target.repository
    failing = repository.add_schedule(
        schedule_factory(
            cron=NEVER_DUE,
            job_name="fail",
            param="disk full\nsecond line",
            max_retries=2,
            retry_delay_ms=0,
            overlap="allow",
            description="nightly export",
        )
    ).id
    http_target.script("/flaky", 500)
    flaky = repository.add_schedule(
        schedule_factory(
            cron=NEVER_DUE,
            job_name="httpCall",
            param={"url": http_target.url("/flaky")},
            max_retries=2,
            retry_delay_ms=0,
            overlap="allow",
        )
    ).id
    no_block = repository.add_schedule(schedule_factory(cron=NEVER_DUE)).id
    for schedule_id in (failing, flaky):
        _set_alert_to(sync_target, schedule_id, slug)
    _set_alert_to(sync_target, no_block, "custom-webhook/no-such-block")
    users = f"jobctl:{sync_target.settings.work_pool}:alert:made-by-hand"
    users_id = _create_users_automation(users)
    synced = sync_target.sync()  # the sync keeps the alert automations too

    again = _sync_alerts(sync_target)

    assert again.plan.writes == 0 and again.plan.unchanged == 2  # failed + crashed
    assert set(again.rejected) == {no_block}
    assert "names no Prefect notification block" in again.rejected[no_block]
    assert _rejections(sync_target) == again.rejected
    assert [step.schedule_id for step in synced.plan.rejected] == [no_block]
    assert synced.plan.rejected[0].reason == again.rejected[no_block]

    start_worker(sync_target.settings.work_pool, database_url=database_url)
    failed_run = _wait_final(_run_now(sync_target, failing))
    succeeded_run = _wait_final(_run_now(sync_target, flaky))

    assert failed_run.state is not None and failed_run.state.is_failed()
    assert failed_run.run_count == 3
    assert succeeded_run.state is not None and succeeded_run.state.is_completed()
    assert succeeded_run.run_count == 2
    wait_for(lambda: http_target.hits_of("/alerts"), timeout_s=ALERT_TIMEOUT_S, what="the alert")
    deadline = time.monotonic() + QUIET_S
    while time.monotonic() < deadline and len(http_target.hits_of("/alerts")) == 1:
        time.sleep(0.5)
    [hit] = http_target.hits_of("/alerts")
    body: dict[str, Any] = hit.body
    assert body["subject"] == "jobctl: fail failed"
    expected = (failing, "nightly export", "ended Failed", "Attempt 3 of 3", "disk full")
    for part in (*expected, failed_run.name):
        assert part in body["body"], body["body"]
    assert "second line" not in body["body"]

    for schedule_id in (failing, flaky, no_block):
        _set_alert_to(sync_target, schedule_id, None)
    emptied = _sync_alerts(sync_target)
    left = {automation.name: automation.id for automation in _automations()}

    assert len(emptied.plan.delete) == 2
    assert alerts.automation_name(sync_target.settings.work_pool, slug) not in left
    assert left[users] == users_id  # a user's automation is never touched


def _crash(run_id: UUID, *, retried: bool) -> None:
    """What a dead worker's run goes through: Crashed, then (retries left) AwaitingRetry
    from jobctl's reconciler."""

    async def crash() -> None:
        async with get_client() as client:
            await client.set_flow_run_state(run_id, Crashed(message="worker lost"), force=True)
            if retried:
                await client.set_flow_run_state(run_id, AwaitingRetry(), force=True)

    asyncio.run(crash())


def test_a_crashed_run_alerts_once_unless_the_reconciler_put_it_back_to_retry(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, http_target: HttpTarget
) -> None:
    slug = _webhook_block(http_target)
    rows = {
        name: sync_target.repository.add_schedule(
            schedule_factory(cron=NEVER_DUE, description=name, overlap="allow")
        ).id
        for name in ("lost", "retried")
    }
    for schedule_id in rows.values():
        _set_alert_to(sync_target, schedule_id, slug)
    sync_target.sync()
    settings = sync_target.settings.model_copy(update={"reconcile_interval_s": 1.0})
    fast = SyncTarget(
        settings=settings, repository=sync_target.repository, server=sync_target.server
    )
    # The sync made both automations; the crash one follows the reconcile interval.
    assert len(_sync_alerts(fast).plan.update) == 1

    started = time.monotonic()
    _crash(_run_now(sync_target, rows["lost"]), retried=False)
    _crash(_run_now(sync_target, rows["retried"]), retried=True)

    wait_for(lambda: http_target.hits_of("/alerts"), timeout_s=ALERT_TIMEOUT_S, what="alert")
    window_s = alerts.crash_window_s(settings)
    assert time.monotonic() - started >= window_s - 1  # not before the retry could come
    deadline = time.monotonic() + QUIET_S
    while time.monotonic() < deadline and len(http_target.hits_of("/alerts")) == 1:
        time.sleep(0.5)
    [hit] = http_target.hits_of("/alerts")
    assert hit.body["subject"].endswith("crashed")
    assert rows["lost"] in hit.body["body"] and "ended Crashed" in hit.body["body"]
    assert rows["retried"] not in hit.body["body"]
