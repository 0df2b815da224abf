"""The guards a scheduled run passes before its job (``flows.maintenance_guard``): the
row's state, read from the database, over a SQLite copy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.maintenance_guard import row_inactive
from jobctl import db
from jobctl.repository import Repository
from tests.conftest import ScheduleFactory
from tests.fixtures.sqlite_copy import sqlite_repository


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[Repository]:
    yield from sqlite_repository(tmp_path)


def test_a_scheduled_run_of_a_disabled_row_skips_itself(
    repository: Repository, schedule_factory: ScheduleFactory
) -> None:
    """Found by the chaos soak (seed 18, the 5-minute soak under a full test run): a row
    disabled while Prefect's scheduler was inserting its next runs kept two of them (the
    pause had deleted the scheduled ones just before), a worker took them (workers take a
    paused deployment's runs), and the row ran at two fire times while it was off."""
    active = repository.add_schedule(schedule_factory())
    disabled = repository.add_schedule(schedule_factory(is_active=False))

    assert row_inactive(repository, active.id) is None
    skipped = row_inactive(repository, disabled.id)
    assert skipped is not None and skipped.is_cancelled() and skipped.name == "Skipped"
    assert skipped.message == "skipped: its row is disabled"
    # A database that cannot answer: it runs, as its deployment's state says.
    down = Repository(db.create_db_engine("sqlite:////nonexistent-dir/jobctl.db"))
    assert row_inactive(down, disabled.id) is None


def test_a_scheduled_run_of_a_deleted_row_skips_itself(
    repository: Repository, schedule_factory: ScheduleFactory
) -> None:
    """Found by trying it: a `* * * * *` row removed at :35 still ran at :00 (its worker had
    taken the run 40 s ahead, and deleting the deployment leaves a taken run alone)."""
    removed = repository.add_schedule(schedule_factory())
    repository.delete_schedule(removed.id)

    skipped = row_inactive(repository, removed.id)

    assert skipped is not None and skipped.is_cancelled() and skipped.name == "Skipped"
    assert skipped.message == f"skipped: no row {removed.id} in the worker's database (deleted)"
