"""The sync's logic over the in-memory Prefect: what it plans and which calls it makes.

What only a real server shows (the payload it accepts, upserts, paging, two syncs at
once) stays in tests/integration/test_sync.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from deployments import sync as schedule_sync
from deployments.plan import Action
from deployments.spec import deployment_name, queue_name
from jobctl import errors
from jobctl.db import create_db_engine
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.conftest import ScheduleFactory
from tests.fixtures.fake_prefect import FakePrefect
from tests.fixtures.sqlite_copy import sqlite_repository

POOL = "fake-pool"


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[Repository]:
    yield from sqlite_repository(tmp_path)


@pytest.fixture
def fake() -> FakePrefect:
    return FakePrefect()


def _sync(repository: Repository, fake: FakePrefect, **kwargs: Any) -> schedule_sync.SyncReport:
    settings = Settings(database_url=str(repository.engine.url), work_pool=POOL)
    return asyncio.run(schedule_sync.sync(settings, repository, fake, **kwargs))


def _set_column(repository: Repository, schedule_id: str, column: str, value: object) -> None:
    with repository.engine.begin() as conn:
        conn.execute(
            text(f'UPDATE "JobSchedule" SET "{column}" = :value WHERE id = :id'),
            {"value": value, "id": schedule_id},
        )


def test_a_first_sync_creates_a_deployment_per_row_its_queues_and_the_pool(
    repository: Repository, fake: FakePrefect, schedule_factory: ScheduleFactory
) -> None:
    first = repository.add_schedule(schedule_factory(priority=10))
    second = repository.add_schedule(schedule_factory(job_name="sleep", param=1, priority=0))

    report = _sync(repository, fake)

    assert report.ok and report.plan.counts()[Action.CREATE] == 2
    deployed = fake.by_schedule()
    assert set(deployed) == {first.id, second.id}
    assert deployed[first.id].name == deployment_name(first.id)
    assert deployed[second.id].flow_name == "sleep"
    assert deployed[first.id].work_queue_name == queue_name(10)
    assert {q.name: q.priority for q in fake.queues[POOL].values()} == {
        queue_name(0): 1,
        queue_name(10): 2,
    }
    assert POOL in fake.pools and fake.zombie_automation
    # Every job gets its manual deployment too.
    assert {c.args[0] for c in fake.called("apply_manual_deployment")} >= {"processData", "sleep"}
    assert report.deployed_after is not None
    assert {d.schedule_id for d in report.deployed_after} == {first.id, second.id}


def test_a_resync_of_unchanged_rows_writes_nothing(
    repository: Repository, fake: FakePrefect, schedule_factory: ScheduleFactory
) -> None:
    for _ in range(3):
        repository.add_schedule(schedule_factory())
    _sync(repository, fake)
    fake.forget_calls()

    report = _sync(repository, fake)

    assert report.plan.counts() == {Action.UNCHANGED: 3}
    assert fake.writes == []


def test_an_edited_row_updates_its_deployment_in_place(
    repository: Repository, fake: FakePrefect, schedule_factory: ScheduleFactory
) -> None:
    row = repository.add_schedule(schedule_factory())
    _sync(repository, fake)
    before = fake.by_schedule()[row.id]
    version = before.version
    fake.forget_calls()

    repository.update_schedule(row.id, cron="15 3 * * *")
    report = _sync(repository, fake)

    assert report.plan.counts()[Action.UPDATE] == 1
    assert [c.name for c in fake.writes] == ["apply_deployment"]
    after = fake.by_schedule()[row.id]
    assert after.id == before.id and after.version != version
    assert after.spec is not None and after.spec.main_schedule[0] == "15 3 * * *"


def test_disabling_pauses_and_enabling_resumes_without_rewriting(
    repository: Repository, fake: FakePrefect, schedule_factory: ScheduleFactory
) -> None:
    row = repository.add_schedule(schedule_factory())
    _sync(repository, fake)
    deployment_id = fake.by_schedule()[row.id].id

    fake.forget_calls()
    repository.update_schedule(row.id, is_active=False)
    assert _sync(repository, fake).plan.counts()[Action.PAUSE] == 1
    assert [(c.name, c.args) for c in fake.writes] == [("set_paused", (deployment_id, True))]

    fake.forget_calls()
    repository.update_schedule(row.id, is_active=True)
    assert _sync(repository, fake).plan.counts()[Action.RESUME] == 1
    assert [(c.name, c.args) for c in fake.writes] == [("set_paused", (deployment_id, False))]


def test_a_deleted_row_loses_its_deployment_and_an_unused_queue(
    repository: Repository, fake: FakePrefect, schedule_factory: ScheduleFactory
) -> None:
    kept = repository.add_schedule(schedule_factory(priority=1))
    removed = repository.add_schedule(schedule_factory(priority=7))
    _sync(repository, fake)

    repository.delete_schedule(removed.id)
    report = _sync(repository, fake)

    assert report.plan.counts()[Action.DELETE] == 1
    assert set(fake.by_schedule()) == {kept.id}
    assert set(fake.queues[POOL]) == {queue_name(1)}


def test_queues_follow_the_order_of_row_priorities(
    repository: Repository, fake: FakePrefect, schedule_factory: ScheduleFactory
) -> None:
    for priority in (10, 0, 5):
        repository.add_schedule(schedule_factory(priority=priority))
    _sync(repository, fake)
    low = repository.add_schedule(schedule_factory(priority=7))
    _sync(repository, fake)
    repository.update_schedule(low.id, priority=2)
    _sync(repository, fake)

    ordered = sorted((q.priority, q.name) for q in fake.queues[POOL].values())
    assert [name for _, name in ordered] == [queue_name(p) for p in (0, 2, 5, 10)]


def test_bad_rows_are_rejected_and_a_bad_rows_deployment_is_paused_once(
    repository: Repository, fake: FakePrefect, schedule_factory: ScheduleFactory
) -> None:
    good = repository.add_schedule(schedule_factory())
    turned_bad = repository.add_schedule(schedule_factory())
    _sync(repository, fake)
    _set_column(repository, turned_bad.id, "cron", "61 * * * *")
    fake.forget_calls()

    report = _sync(repository, fake)

    assert [(s.action, s.schedule_id) for s in report.plan.rejected] == [
        (Action.PAUSE, turned_bad.id)
    ]
    assert (report.plan.rejected[0].reason or "").startswith("cron:")
    assert fake.by_schedule()[turned_bad.id].paused is True
    assert fake.by_schedule()[good.id].paused is False
    # Once paused, the still-bad row is reported without another write.
    fake.forget_calls()
    assert _sync(repository, fake).plan.counts()[Action.REJECTED] == 1
    assert fake.writes == []


def test_a_failed_prefect_read_stops_the_sync_before_any_write(
    repository: Repository, fake: FakePrefect, schedule_factory: ScheduleFactory
) -> None:
    repository.add_schedule(schedule_factory())
    fake.fail_on["read_managed_deployments"] = RuntimeError("500 from Prefect")

    with pytest.raises(RuntimeError, match="500"):
        _sync(repository, fake)

    assert fake.writes == []


def test_an_unhealthy_prefect_fails_clearly_and_is_not_read(
    repository: Repository, fake: FakePrefect, schedule_factory: ScheduleFactory
) -> None:
    repository.add_schedule(schedule_factory())
    fake.health = "connection refused"

    with pytest.raises(errors.PrefectUnavailable, match="cannot be reached"):
        _sync(repository, fake)

    assert [c.name for c in fake.calls] == ["require_healthy"]


def test_a_refused_change_is_reported_and_the_others_still_apply(
    repository: Repository, fake: FakePrefect, schedule_factory: ScheduleFactory
) -> None:
    refused = repository.add_schedule(schedule_factory())
    fine = repository.add_schedule(schedule_factory())
    fake.refused[deployment_name(refused.id)] = "invalid schedule"

    report = _sync(repository, fake)

    assert not report.ok
    assert [(f.step.schedule_id, f.error) for f in report.failures] == [
        (refused.id, "422: invalid schedule")
    ]
    assert set(fake.by_schedule()) == {fine.id}
    assert report.deployed_after is None  # not known: the next sync reads Prefect again


def test_a_dry_run_plans_and_writes_nothing(
    repository: Repository, fake: FakePrefect, schedule_factory: ScheduleFactory
) -> None:
    repository.add_schedule(schedule_factory())

    report = _sync(repository, fake, dry_run=True)

    assert report.plan.counts()[Action.CREATE] == 1 and not report.applied
    assert fake.writes == []


def test_a_sync_given_what_prefect_holds_does_not_read_it(
    repository: Repository, fake: FakePrefect, schedule_factory: ScheduleFactory
) -> None:
    repository.add_schedule(schedule_factory())
    first = _sync(repository, fake)
    fake.forget_calls()

    report = _sync(repository, fake, known=first.deployed_after)

    assert report.plan.counts() == {Action.UNCHANGED: 1}
    assert fake.called("read_managed_deployments") == []


@pytest.mark.parametrize(
    "changes",
    [
        {"cron": "15 3 * * *"},
        {"timezone": "America/New_York"},
        {"param": ["changed", "values"]},
        {"priority": 3},
        {"max_retries": 5, "retry_delay_ms": 2_000, "retry_backoff": "exponential"},
        {"timeout_ms": 1_000},
        {"description": "changed"},
    ],
    ids=lambda changes: "+".join(changes),
)
def test_each_kind_of_edit_updates_the_deployment(
    repository: Repository,
    fake: FakePrefect,
    schedule_factory: ScheduleFactory,
    changes: dict[str, object],
) -> None:
    row = repository.add_schedule(schedule_factory())
    _sync(repository, fake)
    before = fake.by_schedule()[row.id]
    version, spec_before = before.version, before.spec
    fake.forget_calls()

    repository.update_schedule(row.id, **changes)
    report = _sync(repository, fake)

    assert report.plan.counts()[Action.UPDATE] == 1
    assert [c.name for c in fake.writes if "queue" not in c.name] == ["apply_deployment"]
    after = fake.by_schedule()[row.id]
    assert after.id == before.id and after.version != version and after.spec != spec_before


def test_a_failed_table_read_stops_the_sync_before_any_write(
    fake: FakePrefect, schedule_factory: ScheduleFactory
) -> None:
    unreachable = Repository(create_db_engine("postgresql+psycopg://postgres@127.0.0.1:1/none"))

    with pytest.raises(errors.DatabaseUnavailable):
        _sync(unreachable, fake)

    assert fake.writes == []
