"""`jobctl status` and ``GET /v1/job/status`` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from jobctl import status
from jobctl.api.app import create_app
from jobctl.cli import cli
from jobctl.models import JobStatus
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.conftest import ScheduleFactory
from tests.fixtures.api import TOKEN, ApiClient, auth

LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def rows(repo: Repository, schedule_factory: ScheduleFactory) -> dict[str, str]:
    """One row of each state, created long ago; history written just before now."""
    now = datetime.now(UTC)
    every_minute = {"cron": "* * * * *", "timezone": "UTC", "misfire_grace_ms": 60_000}
    ids = {
        "ok": repo.add_schedule(schedule_factory(**every_minute)).id,
        "failed": repo.add_schedule(schedule_factory(**every_minute)).id,
        "missed": repo.add_schedule(schedule_factory(**every_minute)).id,
        "paused": repo.add_schedule(schedule_factory(**every_minute, is_active=False)).id,
        "rejected": repo.add_schedule(schedule_factory(job_name="noSuchJob")).id,
    }
    with repo.engine.begin() as connection:
        connection.execute(
            text('UPDATE "JobSchedule" SET "createdAt" = :at, "updatedAt" = :at'),
            {"at": LONG_AGO},
        )

    def attempt(key: str, run: str, number: int, outcome: JobStatus, start: datetime) -> None:
        error = "RuntimeError: boom\nsecond line" if outcome is JobStatus.FAILED else None
        repo.finish_attempt(
            flow_run_id=run, attempt=number, status=outcome, job_name="processData", param=None,
            schedule_id=ids[key], error=error, start_at=start, end_at=start + timedelta(seconds=2),
        )  # fmt: skip

    recent = now - timedelta(seconds=5)
    attempt("ok", "ok-old", 1, JobStatus.FAILED, now - timedelta(hours=1))
    attempt("ok", "ok-new", 1, JobStatus.SUCCESS, recent)
    attempt("failed", "failed-old", 1, JobStatus.SUCCESS, now - timedelta(hours=1))
    attempt("failed", "failed-new", 1, JobStatus.FAILED, recent - timedelta(seconds=1))
    attempt("failed", "failed-new", 2, JobStatus.FAILED, recent)
    attempt("missed", "missed-old", 1, JobStatus.SUCCESS, now - timedelta(minutes=10))
    return ids


def test_status_says_the_state_last_run_last_success_and_next_fire_of_each_row(
    repo: Repository, rows: dict[str, str], database_url: str
) -> None:
    now = datetime.now(UTC)
    lines = {
        line.schedule_id: line
        for line in status.read_status(Settings(database_url=database_url), repo, now=now)
    }

    by_key = {key: lines[schedule_id] for key, schedule_id in rows.items()}
    assert {key: line.state for key, line in by_key.items()} == {
        "ok": "active",
        "failed": "active",
        "missed": "missed",
        "paused": "paused",
        "rejected": "rejected",
    }
    assert "noSuchJob" in (by_key["rejected"].reason or "")
    ok, failed, missed = by_key["ok"], by_key["failed"], by_key["missed"]
    assert ok.last is not None and ok.last.status is JobStatus.SUCCESS
    assert ok.last.duration_s == 2
    assert failed.last is not None and failed.last.status is JobStatus.FAILED
    assert failed.last.attempt == 2
    assert failed.last_success_at is not None and failed.last_success_at < failed.last.start_at
    assert missed.missed_due_at is not None and missed.missed_due_at <= now - timedelta(minutes=1)
    assert ok.next_fire_at is not None and now < ok.next_fire_at <= now + timedelta(minutes=1)
    assert by_key["paused"].next_fire_at is None
    assert {key for key, line in by_key.items() if line.failing} == {"failed", "missed"}


def test_the_api_and_the_cli_show_the_failing_rows(
    repo: Repository, rows: dict[str, str], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = ApiClient(create_app(Settings(database_url=database_url, api_token=TOKEN)))
    try:
        everything = client.get("/v1/job/status", headers=auth())
        failing = client.get("/v1/job/status", params={"failing": "true"}, headers=auth())
        refused = client.without_token().get("/v1/job/status")
    finally:
        client.shutdown()
    monkeypatch.setenv("JOBCTL_DATABASE_URL", database_url)
    table = CliRunner().invoke(cli, ["status", "--failing"], catch_exceptions=False)
    as_json = CliRunner().invoke(cli, ["status", "--json"], catch_exceptions=False)

    assert everything.status_code == 200 and len(everything.json()) == len(rows)
    assert refused.status_code == 401
    shown = {line["scheduleId"]: line for line in failing.json()}
    assert set(shown) == {rows["failed"], rows["missed"]}
    assert shown[rows["failed"]]["lastRun"]["error"] == "RuntimeError: boom"
    assert shown[rows["failed"]]["lastRun"]["attempt"] == 2
    assert shown[rows["missed"]]["state"] == "missed"
    assert table.exit_code == 0, table.output
    assert "2 schedule(s) failing" in table.output
    assert rows["failed"][:8] in table.output and rows["ok"][:8] not in table.output
    lines = [json.loads(line) for line in as_json.output.splitlines()]
    assert {line["scheduleId"] for line in lines} == set(rows.values())


def test_the_api_gives_the_next_fire_in_utc_whatever_the_rows_zone(
    repo: Repository, schedule_factory: ScheduleFactory, database_url: str
) -> None:
    berlin = repo.add_schedule(schedule_factory(cron="0 3 * * *", timezone="Europe/Berlin"))
    client = ApiClient(create_app(Settings(database_url=database_url, api_token=TOKEN)))
    try:
        [line] = client.get("/v1/job/status", headers=auth()).json()
    finally:
        client.shutdown()

    assert line["scheduleId"] == berlin.id
    next_fire = datetime.fromisoformat(line["nextFireAt"])
    assert line["nextFireAt"].endswith("Z"), line["nextFireAt"]  # as every other time
    assert next_fire.astimezone(ZoneInfo("Europe/Berlin")).hour == 3
