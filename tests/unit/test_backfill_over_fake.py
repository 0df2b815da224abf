"""The backfill's runs over the in-memory Prefect: their order, and a skip row's run that
Prefect refuses because a run of the schedule holds the slot.

The runs on a real server and worker: tests/integration/test_backfill.py, tests/e2e/.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from prefect.client.schemas.objects import FlowRun, State, StateType

from jobctl import backfill_plan, run_origins
from jobctl.prefect import backfill
from jobctl.repository import Repository
from tests.fixtures.fake_prefect import FakeDeployment, FakePrefect
from tests.fixtures.sqlite_copy import sqlite_repository

JOB = "dailyReport"
ROW = "row-1"
FIRES = (datetime(2026, 3, 29, 0, tzinfo=UTC), datetime(2026, 3, 29, 1, tzinfo=UTC))


def _completed() -> State:
    return State(type=StateType.COMPLETED, name="Completed")


def _refused() -> State:
    return State(type=StateType.CANCELLED, name="Cancelled", message=backfill.REFUSED)


class EndingPrefect(FakePrefect):
    """Each run ends, when first read, in the next of ``outcomes`` (then Completed)."""

    def __init__(self, *outcomes: State) -> None:
        super().__init__()
        self.outcomes = list(outcomes)
        self.ended: dict[UUID, State] = {}

    async def read_run(self, run_id: UUID) -> FlowRun:
        run = await super().read_run(run_id)
        if run_id not in self.ended:
            self.ended[run_id] = self.outcomes.pop(0) if self.outcomes else _completed()
        return run.model_copy(update={"state": self.ended[run_id]})


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[Repository]:
    yield from sqlite_repository(tmp_path)


def _work(overlap: str) -> backfill.Backfill:
    return backfill.Backfill(
        schedule_id=ROW, job_name=JOB, cron="0 * * * *", timezone="UTC", overlap=overlap,
        start=FIRES[0], end=datetime(2026, 3, 29, 2, tzinfo=UTC), fire_times=FIRES,
    )  # fmt: skip


def _with_deployment(fake: FakePrefect) -> FakePrefect:
    item = FakeDeployment(
        id=uuid4(), name=f"schedule-{ROW}", flow_name=JOB, work_pool_name="pool",
        tags=["jobctl", f"schedule:{ROW}"], version="v1",
    )  # fmt: skip
    fake.deployments[item.id] = item
    return fake


def _execute(fake: FakePrefect, repository: Repository, overlap: str) -> list[backfill.BackfillRun]:
    work = _work(overlap)
    return asyncio.run(backfill.execute(work, fake, repository, poll_s=0))


def _keys(fake: FakePrefect) -> list[str]:
    return [call.args[1] for call in fake.called("create_scheduled_run")]


def test_a_skip_row_creates_each_run_after_the_previous_one_ended(
    repository: Repository,
) -> None:
    fake = _with_deployment(EndingPrefect())

    runs = _execute(fake, repository, "skip")

    assert [run.state for run in runs] == ["Completed", "Completed"]
    creates = [i for i, call in enumerate(fake.calls) if call.name == "create_scheduled_run"]
    first_read = next(i for i, call in enumerate(fake.calls) if call.name == "read_run")
    assert creates[0] < first_read < creates[1]  # the first run ended before the second
    assert _keys(fake) == [backfill_plan.idempotency_key(ROW, fire) for fire in FIRES]


def test_an_allow_row_creates_every_run_before_waiting(repository: Repository) -> None:
    fake = _with_deployment(EndingPrefect())

    _execute(fake, repository, "allow")

    names = [call.name for call in fake.calls if call.name != "find_deployment"]
    assert names[:2] == ["create_scheduled_run", "create_scheduled_run"]


def test_a_run_refused_for_the_slot_is_tried_again_and_a_second_backfill_reuses_the_tries(
    repository: Repository,
) -> None:
    fake = _with_deployment(EndingPrefect(_refused()))

    runs = _execute(fake, repository, "skip")
    again = _execute(fake, repository, "skip")

    first_key = backfill_plan.idempotency_key(ROW, FIRES[0])
    second_key = backfill_plan.idempotency_key(ROW, FIRES[1])
    assert _keys(fake) == [first_key, f"{first_key} #2", second_key] * 2
    assert [run.state for run in runs] == ["Completed", "Completed"]
    assert again == runs
    assert len(fake.runs) == 3
    # Every try is known as the backfill's, each at its fire time.
    assert sorted(run_origins.logical_times(repository, ROW).values()) == [FIRES[0]] * 2 + [
        FIRES[1]
    ]
