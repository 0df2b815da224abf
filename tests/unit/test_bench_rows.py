"""The benchmarks' rows and edits: valid, and each edit an update (issue 20)."""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import UTC, datetime
from typing import cast

import pytest

from bench import sync_bench
from deployments.plan import Action, Deployed, Plan, QueuePlan, Step
from deployments.sync import SyncReport, desired_state
from jobctl.records import Schedule
from jobctl.repository import Repository
from jobctl.settings import Settings

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
SETTINGS = Settings(database_url="sqlite://", work_pool="bench")


def rows(count: int = 300) -> list[Schedule]:
    rng = random.Random(1000)
    return [sync_bench._row(index, rng, CREATED) for index in range(count)]


class Rows:
    """Stands in for the repository: ``desired_state`` only lists the rows."""

    def __init__(self, *rows: Schedule) -> None:
        self.rows = list(rows)

    def list_schedules(self) -> list[Schedule]:
        return self.rows


def versions(*edits: Schedule) -> set[str]:
    """The deployment versions the sync wants for these edits of one row."""
    found = set()
    for row in edits:
        specs, rejected = desired_state(SETTINGS, cast(Repository, Rows(row)))
        assert not rejected
        found.add(specs[row.id].version)
    return found


def test_seeded_rows_cover_every_job_and_all_validate() -> None:
    seeded = rows()
    assert {row.job_name for row in seeded} == {"processData", "httpCall", "sleep"}
    assert sync_bench.row_problems(seeded) == []


@pytest.mark.parametrize("kind", sync_bench.CHANGE_KINDS)
def test_every_edit_validates_and_changes_the_deployment_twice_over(kind: str) -> None:
    for row in rows(60):
        once = sync_bench.edited(row, kind, "a")
        twice = sync_bench.edited(once, kind, "b")
        assert sync_bench.row_problems([once, twice]) == []
        assert len(versions(row, once, twice)) == 3, (kind, row)


def test_the_old_edit_was_rejected_and_require_valid_says_so() -> None:
    bad = dataclasses.replace(rows(1)[0], param=["changed", "a", 1])
    with pytest.raises(sync_bench.BenchRowError, match="1 of 1 rows would be rejected"):
        sync_bench.require_valid([bad], "edits")


def report(*steps: Step) -> SyncReport:
    return SyncReport(plan=Plan(list(steps), QueuePlan()), applied=True)


def deployed(schedule_id: str) -> Deployed:
    return Deployed(
        id=uuid.uuid4(),
        name=f"schedule-{schedule_id}",
        flow_name="processData",
        schedule_id=schedule_id,
        version="v1",
        paused=False,
    )


def test_expect_plan_accepts_exactly_the_meant_updates() -> None:
    plan = report(
        Step(Action.UPDATE, "a", deployed=deployed("a")),
        Step(Action.UNCHANGED, "b", deployed=deployed("b")),
    )
    sync_bench.expect_plan(plan, "changed", {"a": Action.UPDATE}, Action.UNCHANGED)


def test_expect_plan_stops_on_a_pause_where_an_update_was_meant() -> None:
    plan = report(
        Step(Action.PAUSE, "a", deployed=deployed("a"), reason="param: does not fit"),
        Step(Action.UNCHANGED, "b", deployed=deployed("b")),
    )
    with pytest.raises(sync_bench.UnexpectedPlan, match=r"a: pause, not update \(param"):
        sync_bench.expect_plan(plan, "changed", {"a": Action.UPDATE}, Action.UNCHANGED)


def test_expect_plan_stops_on_a_meant_row_with_no_step() -> None:
    plan = report(Step(Action.UNCHANGED, "b", deployed=deployed("b")))
    with pytest.raises(sync_bench.UnexpectedPlan, match="a: no step"):
        sync_bench.expect_plan(plan, "changed", {"a": Action.UPDATE}, Action.UNCHANGED)
