"""The sync against a real Prefect server, on SQLite and PostgreSQL tables: what only a
real server shows (the payload it takes, paging, upserts, queue order, HTTP writes). The
sync's logic over the in-memory Prefect: tests/unit/test_sync_over_fake.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from deployments.plan import Action
from deployments.spec import deployment_name, queue_name
from jobctl import cron as cron_rules
from jobctl import errors
from jobctl.alert_problem_model import AlertTargetProblem
from jobctl.metrics import MetricsSource
from jobctl.prefect.gateway import client as gateway_client
from jobctl.repository import Repository
from jobctl.status import REJECTED, read_status
from tests.conftest import ScheduleFactory
from tests.fixtures.sync import RequestLog, SyncTarget

pytestmark = pytest.mark.usefixtures("prefect_server")


def _assert_mirrors(target: SyncTarget, schedule_id: str) -> None:
    row = target.repository.get_schedule(schedule_id)
    deployment = target.deployments()[schedule_id]
    assert deployment.name == deployment_name(schedule_id)
    assert target.flow_name(deployment) == row.job_name
    # The row's cron, or its UTC equivalent, and the repeat schedules of DST fall-backs
    # if any (docs/schedules.md).
    (main,) = [s for s in deployment.schedules if s.slug is None]
    cron = main.schedule
    zone = row.timezone or target.settings.timezone
    utc_cron = cron_rules.utc_equivalent(row.cron, zone, datetime.now(UTC))
    expected = (row.cron, zone) if utc_cron is None else (utc_cron, "UTC")
    assert (cron.cron, cron.timezone) == expected  # type: ignore[union-attr]
    assert deployment.parameters == {"param": row.param}
    assert deployment.paused is (not row.is_active)
    assert deployment.work_pool_name == target.settings.work_pool
    assert deployment.work_queue_name == queue_name(row.priority)
    assert deployment.description == row.description
    assert {"jobctl", f"job:{row.job_name}"} <= set(deployment.tags)
    policy = json.loads(deployment.job_variables["env"]["JOBCTL_RUN_POLICY"])
    assert policy["retries"] == (row.max_retries or 0)
    assert policy["timeout_s"] == (row.timeout_ms / 1000 if row.timeout_ms else None)


def test_sync_creates_one_deployment_per_row(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    first = sync_target.repository.add_schedule(
        schedule_factory(
            cron="0 0 * * *",
            param=["param1", "param2"],
            priority=10,
            timeout_ms=600_000,
            max_retries=3,
            description="每日資料清理任務",
        )
    )
    second = sync_target.repository.add_schedule(
        schedule_factory(cron="*/5 * * * *", job_name="sleep", param=1, timezone="Asia/Taipei")
    )

    report = sync_target.sync()

    assert report.plan.counts()[Action.CREATE] == 2
    assert report.ok
    assert set(sync_target.deployments()) == {first.id, second.id}
    _assert_mirrors(sync_target, first.id)
    _assert_mirrors(sync_target, second.id)


def test_sync_updates_the_deployment_of_an_edited_row(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    """Every field at once: Prefect takes the rewritten deployment in place. Which edit
    plans an update: tests/unit/test_sync_over_fake.py."""
    row = sync_target.repository.add_schedule(schedule_factory())
    sync_target.sync()
    before = sync_target.deployments()[row.id]

    sync_target.repository.update_schedule(
        row.id,
        cron="15 3 * * *",
        timezone="America/New_York",
        param=["changed", "values"],
        priority=3,
        max_retries=5,
        retry_delay_ms=2_000,
        retry_backoff="fixed",
        timeout_ms=1_000,
        description="changed",
    )
    report = sync_target.sync()

    assert report.plan.counts()[Action.UPDATE] == 1
    after = sync_target.deployments()[row.id]
    assert after.id == before.id
    assert after.version != before.version
    _assert_mirrors(sync_target, row.id)


def test_disabling_pauses_and_enabling_resumes(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    row = sync_target.repository.add_schedule(schedule_factory())
    sync_target.sync()

    sync_target.repository.update_schedule(row.id, is_active=False)
    assert sync_target.sync().plan.counts()[Action.PAUSE] == 1
    assert sync_target.deployments()[row.id].paused is True

    sync_target.repository.update_schedule(row.id, is_active=True)
    assert sync_target.sync().plan.counts()[Action.RESUME] == 1
    assert sync_target.deployments()[row.id].paused is False
    _assert_mirrors(sync_target, row.id)


def test_a_job_change_moves_the_deployment_to_the_other_flow(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    row = sync_target.repository.add_schedule(schedule_factory(job_name="processData"))
    sync_target.sync()

    sync_target.repository.update_schedule(row.id, job_name="sleep", param=1)
    sync_target.sync()

    deployment = sync_target.deployments()[row.id]  # asserts there is exactly one
    assert sync_target.flow_name(deployment) == "sleep"
    _assert_mirrors(sync_target, row.id)


def test_an_unchanged_resync_makes_no_write_request(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    for priority in (1, 5, 5, None):
        sync_target.repository.add_schedule(schedule_factory(priority=priority))
    inactive = sync_target.repository.add_schedule(schedule_factory(is_active=False))
    first = RequestLog()
    sync_target.sync(log=first)
    assert first.writes, "the cold sync must have written"

    second = RequestLog()
    report = sync_target.sync(log=second)

    assert report.plan.counts()[Action.UNCHANGED] == 5
    assert second.requests, "the resync must have read Prefect"
    assert second.writes == []
    assert sync_target.deployments()[inactive.id].paused is True


def test_a_resync_reads_every_page_of_prefects_deployments(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_client, "PAGE_SIZE", 3)  # 10 rows: 4 pages, read 4 at a time
    rows = [sync_target.repository.add_schedule(schedule_factory()) for _ in range(10)]
    sync_target.sync()

    log = RequestLog()
    report = sync_target.sync(log=log)

    # A page missed would plan a create, a page read twice a duplicate.
    assert report.plan.counts() == {Action.UNCHANGED: len(rows)}
    assert log.writes == []
    pages = [path for _, path in log.requests if path.endswith("/deployments/filter")]
    assert len(pages) >= 4


def test_queues_follow_the_order_of_row_priorities(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    for priority in (10, 0, 5):
        sync_target.repository.add_schedule(schedule_factory(priority=priority))
    sync_target.sync()
    low = sync_target.repository.add_schedule(schedule_factory(priority=7))
    sync_target.sync()
    sync_target.repository.update_schedule(low.id, priority=2)
    sync_target.sync()

    async def read_queues() -> dict[str, int]:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            queues = await client.read_work_queues(work_pool_name=sync_target.settings.work_pool)
            return {q.name: q.priority for q in queues}

    queues = asyncio.run(read_queues())
    managed = sorted((p, n) for n, p in queues.items() if n.startswith("priority-"))
    assert [name for _, name in managed] == [
        "priority-0", "priority-2", "priority-5", "priority-10",
    ]  # fmt: skip
    assert "priority-7" not in queues  # no row uses it any more


def test_an_unreachable_prefect_fails_clearly(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    sync_target.repository.add_schedule(schedule_factory())
    with (
        temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:1/api"}),
        pytest.raises(errors.PrefectUnavailable, match="cannot be reached"),
    ):
        sync_target.sync()


def test_two_syncs_at_once_converge_to_one_deployment_per_row(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    rows = [sync_target.repository.add_schedule(schedule_factory()) for _ in range(12)]

    async def both() -> None:
        await asyncio.gather(sync_target.sync_async(), sync_target.sync_async())

    asyncio.run(both())

    assert set(sync_target.deployments()) == {row.id for row in rows}
    log = RequestLog()
    assert sync_target.sync(log=log).plan.counts()[Action.UNCHANGED] == len(rows)
    assert log.writes == []


def test_a_row_alerting_a_block_that_does_not_exist_is_rejected_until_the_block_exists(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    """Only the sync asks Prefect for the block; status and the metrics, which do not,
    show the row rejected from what the sync left in the table."""
    repo = sync_target.repository
    name = f"oncall-{uuid.uuid4().hex[:8]}"
    row = repo.add_schedule(schedule_factory(cron="0 0 * * *", alert_to=f"custom-webhook/{name}"))

    synced = sync_target.sync()

    assert [step.schedule_id for step in synced.plan.rejected] == [row.id]
    (line,) = read_status(sync_target.settings, repo)
    assert (line.state, line.reason) == (REJECTED, synced.plan.rejected[0].reason)
    assert "names no Prefect notification block" in (line.reason or "")
    assert _rejected_in_metrics(repo) == 1
    found_at = _found_at(repo)
    sync_target.sync()
    assert _found_at(repo) == found_at  # a resync finding the same writes nothing

    CustomWebhookNotificationBlock(name="jobctl test", url="http://127.0.0.1:9/alerts").save(name)
    synced = sync_target.sync()

    assert synced.plan.rejected == []
    (line,) = read_status(sync_target.settings, repo)
    assert line.state != REJECTED and line.next_fire_at is not None
    assert _rejected_in_metrics(repo) == 0


def _found_at(repo: Repository) -> list[datetime]:
    with repo.session() as session:
        return list(session.scalars(select(AlertTargetProblem.foundAt)))


def _rejected_in_metrics(repo: Repository) -> float:
    families = text_string_to_metric_families(MetricsSource(repo).scrape().decode())
    (value,) = [
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "jobctl_schedules" and sample.labels["state"] == "rejected"
    ]
    return value
