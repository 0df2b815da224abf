"""Which rows the sync rejects, read from SQLite and PostgreSQL tables, over the in-memory
Prefect (tests/fixtures/fake_prefect.py): what bad rows look like depends on the
database, not on Prefect."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import text

from deployments import sync as schedule_sync
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.conftest import ScheduleFactory
from tests.fixtures.fake_prefect import FakePrefect

POOL = "fake-pool"


def _sync(repository: Repository, fake: FakePrefect) -> schedule_sync.SyncReport:
    settings = Settings(database_url=str(repository.engine.url), work_pool=POOL)
    return asyncio.run(schedule_sync.sync(settings, repository, fake))


def _insert_by_sql(repository: Repository, schedule_id: str, **columns: object) -> None:
    values = {"id": schedule_id, "cron": "* * * * *", "jobName": "processData", **columns}
    names = ", ".join(f'"{name}"' for name in values)
    binds = ", ".join(f":{name}" for name in values)
    with repository.engine.begin() as conn:
        conn.execute(text(f'INSERT INTO "JobSchedule" ({names}) VALUES ({binds})'), values)


def test_bad_rows_are_rejected_with_reasons_and_good_rows_still_sync(
    repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    fake = FakePrefect()
    good = repo.add_schedule(schedule_factory())
    _insert_by_sql(repo, "bad-cron", cron="61 * * * *")
    _insert_by_sql(repo, "bad-seconds", cron="*/10 * * * * *")
    _insert_by_sql(repo, "bad-job", jobName="__init__")
    _insert_by_sql(repo, "bad-timeout", timeout=-5)
    _insert_by_sql(repo, "bad-param", param=json.dumps(["x" * 70_000]))

    report = _sync(repo, fake)

    reasons = {step.schedule_id: step.reason or "" for step in report.plan.rejected}
    assert set(reasons) == {"bad-cron", "bad-seconds", "bad-job", "bad-timeout", "bad-param"}
    assert reasons["bad-cron"].startswith("cron:")
    assert "sub-minute" in reasons["bad-seconds"]
    assert reasons["bad-job"].startswith("jobName:")
    assert reasons["bad-timeout"].startswith("timeout:")
    assert reasons["bad-param"].startswith("param:")
    assert set(fake.by_schedule()) == {good.id}


# PostgreSQL's jsonb refuses malformed JSON at insert: only SQLite can hold such a row.
@pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)
def test_malformed_json_param_is_rejected_on_sqlite(repo: Repository) -> None:
    fake = FakePrefect()
    _insert_by_sql(repo, "bad-json", param="{not json")

    report = _sync(repo, fake)

    assert [s.schedule_id for s in report.plan.rejected] == ["bad-json"]
    assert "not valid JSON" in (report.plan.rejected[0].reason or "")
    assert fake.by_schedule() == {}
