"""Missed runs recorded once and alerted once through a real notification block (a real
Prefect server, a ``custom-webhook`` block, a local HTTP receiver), counted in metrics."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from jobctl import run_origins, status_queries
from jobctl.metrics import MetricsSource
from jobctl.models import JobStatus
from jobctl.prefect import missed_runs
from jobctl.prefect.gateway.client import ClientGateway
from jobctl.prefect.missed_runs import TickReport
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.conftest import ScheduleFactory
from tests.fixtures.http_target import HttpTarget

pytestmark = pytest.mark.usefixtures("prefect_server")

NOW = datetime(2026, 11, 30, 10, 7, 30, tzinfo=UTC)


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 30, hour, minute, second, tzinfo=UTC)


def tick(settings: Settings, repo: Repository, now: datetime) -> TickReport:
    async def run() -> TickReport:
        async with get_client() as client:
            return await missed_runs.tick(settings, repo, ClientGateway(client), now=now)

    return asyncio.run(run())


def webhook_block(http_target: HttpTarget) -> str:
    name = f"missed-{uuid.uuid4().hex[:8]}"
    CustomWebhookNotificationBlock(
        name="jobctl test receiver",
        url=http_target.url("/missed"),
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        allow_private_urls=True,
    ).save(name)
    return f"custom-webhook/{name}"


def test_missed_due_times_are_recorded_and_alerted_once_across_restarts(
    repo: Repository,
    schedule_factory: ScheduleFactory,
    http_target: HttpTarget,
    database_url: str,
) -> None:
    every_5 = {"cron": "*/5 * * * *", "timezone": "UTC", "misfire_grace_ms": 60_000}
    late = repo.add_schedule(schedule_factory(**every_5, description="hourly export")).id
    silent = repo.add_schedule(schedule_factory(**every_5)).id  # no alertTo: counted only
    on_time = repo.add_schedule(schedule_factory(**every_5)).id
    paused = repo.add_schedule(schedule_factory(**every_5, is_active=False)).id
    slug = webhook_block(http_target)
    with repo.engine.begin() as connection:
        connection.execute(
            text('UPDATE "JobSchedule" SET "createdAt" = :at, "updatedAt" = :at'),
            {"at": at(9, 47)},
        )
        connection.execute(
            text('UPDATE "JobSchedule" SET "alertTo" = :slug WHERE id IN (:a, :b)'),
            {"slug": slug, "a": late, "b": paused},
        )
    ran = {
        late: [at(9, 50, 2)],
        silent: [at(9, 50, 2), at(9, 55, 2), at(10, 0, 3)],
        on_time: [at(9, 50, 2), at(9, 55, 2), at(10, 0, 2), at(10, 5, 40)],
    }
    for schedule_id, starts in ran.items():
        for start in starts:
            repo.finish_attempt(
                flow_run_id=f"run-{schedule_id}-{start:%H%M}", attempt=1,
                status=JobStatus.SUCCESS, job_name="processData", param=None,
                schedule_id=schedule_id, start_at=start, end_at=start + timedelta(seconds=1),
            )  # fmt: skip
    settings = Settings(database_url=database_url)

    first = tick(settings, repo, NOW)
    restarted = tick(settings, repo, NOW + timedelta(seconds=30))  # a new watcher, same minute
    later = tick(settings, repo, NOW + timedelta(minutes=5))  # 10:10 missed by all three

    assert first == TickReport(detected=4, recorded=4, alerted=3, failed=0)
    assert restarted.recorded == 0 and restarted.alerted == 0
    assert later == TickReport(detected=3, recorded=3, alerted=1, failed=0)
    hits = http_target.hits_of("/missed")
    assert len(hits) == 4
    assert all(hit.body["subject"] == "jobctl: processData did not run" for hit in hits)
    bodies = "\n".join(hit.body["body"] for hit in hits)
    for due in (at(9, 55), at(10, 0), at(10, 5), at(10, 10)):
        assert due.isoformat() in bodies
    assert late in bodies and "hourly export" in bodies and silent not in bodies

    scrape = MetricsSource(repo).scrape(now=NOW + timedelta(minutes=5))
    missed = {
        sample.labels["schedule"]: sample.value
        for family in text_string_to_metric_families(scrape.decode())
        for sample in family.samples
        if sample.name == "jobctl_missed_runs_total"
    }
    assert missed == {late: 4, silent: 2, on_time: 1}
    assert status_queries.missed_since(repo, at(10, 0)) == 6  # for `jobctl up`'s status line


def test_an_alert_that_cannot_be_delivered_is_sent_again_next_round(
    repo: Repository,
    schedule_factory: ScheduleFactory,
    http_target: HttpTarget,
    database_url: str,
) -> None:
    row = repo.add_schedule(schedule_factory(cron="*/5 * * * *", timezone="UTC")).id
    slug = webhook_block(http_target)
    with repo.engine.begin() as connection:
        connection.execute(
            text('UPDATE "JobSchedule" SET "createdAt" = :at, "updatedAt" = :at, "alertTo" = :s'),
            {"at": at(10, 1), "s": slug},
        )
    http_target.script("/missed", 503)
    settings = Settings(database_url=database_url)

    failing = tick(settings, repo, NOW)
    retried = tick(settings, repo, NOW + timedelta(seconds=30))

    assert failing == TickReport(detected=1, recorded=1, alerted=0, failed=1)
    assert retried == TickReport(detected=0, recorded=0, alerted=1, failed=0)
    assert [hit.body["body"].count(row) for hit in http_target.hits_of("/missed")] == [1, 1]


def test_a_gap_between_runs_is_missed_and_backfills_or_manual_runs_do_not_fill_it(
    repo: Repository, schedule_factory: ScheduleFactory, database_url: str
) -> None:
    """Chaos soak, seed 18: a row ran before and after a due time that had no run of its
    own; the detector counted every due time before the last start as run, and never
    reported it."""
    row = repo.add_schedule(schedule_factory(cron="*/5 * * * *", timezone="UTC")).id
    with repo.engine.begin() as connection:
        connection.execute(
            text('UPDATE "JobSchedule" SET "createdAt" = :at, "updatedAt" = :at'),
            {"at": at(9, 52)},
        )
    starts = {
        "scheduled-0955": (row, at(9, 55, 1)),
        "scheduled-1005": (row, at(10, 5, 1)),
        "backfill-0900": (row, at(10, 0, 2)),  # a backfill's run, for 09:00
        "manual": (None, at(10, 0, 3)),  # started by hand: no schedule
    }
    for run_id, (schedule_id, start) in starts.items():
        repo.finish_attempt(
            flow_run_id=run_id, attempt=1, status=JobStatus.SUCCESS, job_name="processData",
            param=None, schedule_id=schedule_id, start_at=start,
            end_at=start + timedelta(seconds=1),
        )  # fmt: skip
    run_origins.record(
        repo, flow_run_id="backfill-0900", schedule_id=row, origin="backfill",
        logical_time=at(9, 0), now=at(10, 0),
    )  # fmt: skip

    report = tick(Settings(database_url=database_url), repo, NOW)

    assert report.recorded == 1
    assert list(status_queries.latest_missed(repo).items()) == [(row, at(10, 0))]
