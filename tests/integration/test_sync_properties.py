"""Properties of the sync against the real Prefect server (hypothesis), on SQLite and PostgreSQL.

Any sequence of table edits (add, update fields, disable/enable, delete, make invalid by
plain SQL, fix), each followed by a sync, leaves Prefect's deployments equal to the rows,
and a second sync right after each one writes nothing. Each example gets a pool of its own
and an empty table.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prefect.client.orchestration import get_client
from prefect.client.schemas.responses import DeploymentResponse
from sqlalchemy import text

from deployments import spec
from deployments.plan import Action
from deployments.sync import SyncReport
from jobctl import cron, errors, policy, registry
from jobctl.fields import COLUMN_OF_FIELD, OVERLAP_POLICIES
from jobctl.records import SPEC_FIELDS, Schedule, ScheduleSpec
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.fixtures.sync import RequestLog, SyncTarget

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("prefect_server")]

SYNC_PROPERTY_SETTINGS = settings(
    max_examples=5,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the work tree
    # No shrinking: each example costs real syncs; the failing sequence is printed as is.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Never due while a test runs: Prefect's scheduler has almost nothing to create.
CRONS = ["0 0 1 1 *", "@yearly", "0 0 0 1 1 *", "15 3 1 1 *", "0 0 29 2 *"]
# A job and a param that fits it.
JOBS = [
    ("processData", ["alpha", "beta"]),
    ("processData", None),
    ("fail", "boom"),
    ("sleep", 2),
    ("httpCall", {"url": "http://127.0.0.1:9/"}),
]
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "cron": st.sampled_from(CRONS),
    "priority": st.sampled_from([None, 0, 3, 10]),
    "timeout_ms": st.sampled_from([None, 0, 5_000]),
    "max_retries": st.sampled_from([None, 0, 2]),
    "timezone": st.sampled_from([None, "UTC", "Asia/Taipei"]),
    "description": st.sampled_from([None, "每日", '\'; DROP TABLE "JobSchedule"; --']),
    "overlap": st.sampled_from(OVERLAP_POLICIES),
}
# Plain SQL that makes a good row bad, one field each (a param only for jobs it does not fit).
BREAKS = [
    ("cron", "61 * * * *"),
    ("job_name", "noSuchJob"),
    ("timeout_ms", -5),
    ("param", {"not": "a list"}),
    ("timezone", "Mars/Olympus"),
]
SLOTS = range(4)


@dataclass
class Table:
    """The rows this example made, and which of them it made bad."""

    ids: dict[int, str] = field(default_factory=dict)  # slot -> row id
    bad_fields: dict[str, set[str]] = field(default_factory=dict)  # row id -> fields
    # Rows whose deployment existed once: a bad one keeps it, paused.
    deployed: set[str] = field(default_factory=set)

    @property
    def broken(self) -> set[str]:
        return {schedule_id for schedule_id, bad in self.bad_fields.items() if bad}

    def overwritten(self, schedule_id: str, names: Iterable[str]) -> None:
        self.bad_fields.get(schedule_id, set()).difference_update(names)


def _good_row(data: st.DataObject) -> ScheduleSpec:
    job_name, param = data.draw(st.sampled_from(JOBS))
    values = {name: data.draw(strategy) for name, strategy in FIELDS.items()}
    active = data.draw(st.booleans())
    return ScheduleSpec(job_name=job_name, param=param, is_active=active, **values)


def _edit(target: SyncTarget, table: Table, data: st.DataObject) -> str:
    """One edit of the table, drawn from what the table holds; returns what it did."""
    repo = target.repository
    slot = data.draw(st.sampled_from(SLOTS))
    schedule_id = table.ids.get(slot)
    if schedule_id is None:
        row = repo.add_schedule(_good_row(data), schedule_id=str(uuid.uuid4()))
        table.ids[slot] = row.id
        return f"add {row.id}"
    what = data.draw(st.sampled_from(["update", "toggle", "delete", "break", "fix"]))
    if what == "update":
        names = data.draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=3))
        changes = {name: data.draw(FIELDS[name]) for name in names}
        if data.draw(st.booleans()):
            job = data.draw(st.sampled_from(JOBS))
            changes.update(zip(("job_name", "param"), job, strict=True))
        repo.update_schedule(schedule_id, **changes)
        table.overwritten(schedule_id, changes)
    elif what == "toggle":
        repo.update_schedule(schedule_id, is_active=not repo.get_schedule(schedule_id).is_active)
    elif what == "delete":
        repo.delete_schedule(schedule_id)
        del table.ids[slot]
        table.bad_fields.pop(schedule_id, None)
    elif what == "break":
        name, value = data.draw(st.sampled_from(BREAKS))
        column = COLUMN_OF_FIELD[name]
        with repo.engine.begin() as connection:
            connection.execute(
                text(f'UPDATE "JobSchedule" SET "{column}" = :value WHERE id = :id'),
                {"value": json.dumps(value) if name == "param" else value, "id": schedule_id},
            )
        if name != "param" or not _fits(repo.get_schedule(schedule_id).job_name, value):
            table.bad_fields.setdefault(schedule_id, set()).add(name)
        return f"break {name} of {schedule_id}"
    else:  # fix: every field good again
        good = _good_row(data)
        repo.update_schedule(schedule_id, **{name: getattr(good, name) for name in SPEC_FIELDS})
        table.bad_fields.pop(schedule_id, None)
    return f"{what} {schedule_id}"


def _fits(job_name: str, param: Any) -> bool:
    if job_name not in registry.job_names():
        return True  # the row is bad already, for its job
    try:
        registry.get_job(job_name).check_param(param)
    except errors.InvalidParam:
        return False
    return True


def _queues(work_pool: str) -> dict[str, int]:
    async def read() -> dict[str, int]:
        async with get_client() as client:
            queues = await client.read_work_queues(work_pool_name=work_pool)
            return {q.name: q.priority for q in queues}

    return asyncio.run(read())


def _assert_mirrors(
    deployment: DeploymentResponse, row: Schedule, target: SyncTarget, flow_name: str
) -> None:
    """The deployment is the row, field by field."""
    assert flow_name == row.job_name
    assert deployment.name == spec.deployment_name(row.id)
    (schedule,) = deployment.schedules
    assert schedule.schedule.cron == cron.normalize_cron(row.cron)  # type: ignore[union-attr]
    zone = row.timezone or target.settings.timezone
    assert schedule.schedule.timezone == zone  # type: ignore[union-attr]
    assert deployment.parameters == {"param": row.param}
    assert deployment.paused is (not row.is_active)
    assert deployment.work_pool_name == target.settings.work_pool
    assert deployment.work_queue_name == spec.queue_name(row.priority)
    assert deployment.description == (row.description or "")  # not Prefect's "None"
    assert f"{spec.SCHEDULE_TAG_PREFIX}{row.id}" in deployment.tags
    limit, strategy = spec.OVERLAP_CONCURRENCY[row.overlap]
    concurrency = deployment.global_concurrency_limit
    assert (concurrency.limit if concurrency else None) == limit, row.overlap
    if strategy is not None:
        assert deployment.concurrency_options is not None
        assert deployment.concurrency_options.collision_strategy.value == strategy
    run_policy = json.loads(deployment.job_variables["env"][policy.POLICY_ENV])
    assert run_policy["retries"] == (row.max_retries or 0)
    assert run_policy["timeout_s"] == (row.timeout_ms / 1000 if row.timeout_ms else None)


def _assert_prefect_equals_rows(target: SyncTarget, table: Table, report: SyncReport) -> None:
    rows = {row.id: row for row in target.repository.list_schedules()}
    assert set(rows) == set(table.ids.values())
    deployments = target.deployments()  # asserts one deployment per schedule at most
    rejected = {step.schedule_id: step.reason for step in report.plan.rejected}
    assert set(rejected) == table.broken, rejected
    assert all(rejected.values()), rejected
    assert set(deployments) <= set(rows), "a deleted row kept its deployment"
    for schedule_id, row in rows.items():
        if schedule_id in table.broken:
            if schedule_id in deployments:  # it was good once: kept, paused, not updated
                assert schedule_id in table.deployed
                assert deployments[schedule_id].paused is True
            continue
        deployment = deployments[schedule_id]
        _assert_mirrors(deployment, row, target, target.flow_name(deployment))
        table.deployed.add(schedule_id)
    managed = sorted(
        (priority, int(name.removeprefix(spec.QUEUE_PREFIX)))
        for name, priority in _queues(target.settings.work_pool).items()
        if name.startswith(spec.QUEUE_PREFIX)
    )
    wanted = sorted({rows[i].priority or 0 for i in rows if i not in table.broken})
    in_order = [row_priority for _, row_priority in managed]
    assert [p for p in in_order if p in wanted] == wanted, managed


def _fresh_target(sync_target: SyncTarget) -> SyncTarget:
    """A pool of its own and an empty table, for one example."""
    with sync_target.repository.engine.begin() as connection:
        connection.execute(text('DELETE FROM "JobSchedule"'))
    settings_ = Settings(
        database_url=sync_target.settings.database_url,
        work_pool=f"jobctl-prop-{uuid.uuid4().hex[:8]}",
    )
    return SyncTarget(settings_, Repository(sync_target.repository.engine), sync_target.server)


@SYNC_PROPERTY_SETTINGS
@given(data=st.data())
def test_any_sequence_of_edits_each_synced_leaves_deployments_equal_to_the_rows(
    sync_target: SyncTarget, data: st.DataObject
) -> None:
    target = _fresh_target(sync_target)
    table = Table()
    done: list[str] = []
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        done.append(_edit(target, table, data))

        report = target.sync()

        assert report.ok, (done, report.failures)
        _assert_prefect_equals_rows(target, table, report)
        # Idempotence: planning again against what the sync left changes nothing.
        log = RequestLog()
        again = target.sync(log=log)
        assert again.plan.is_noop, (done, [s for s in again.plan.writes], again.plan.queues)
        assert log.writes == [], (done, log.writes)
        unchanged = again.plan.counts()[Action.UNCHANGED]
        assert unchanged == len(table.ids) - len(table.broken), done
