"""Which due times of a row are missed (pure: fixed instants)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobctl.models import JobStatus
from jobctl.prefect import missed_runs
from jobctl.prefect.missed_runs import MAX_DUE_PER_ROW, detect, due_times, missed_of_row
from jobctl.records import Schedule
from jobctl.status_queries import LatestAttempt

NOW = datetime(2026, 12, 1, 10, 7, 30, tzinfo=UTC)
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)
KNOWN = ["processData"]


def row(**overrides: object) -> Schedule:
    values: dict[str, object] = {
        "id": "s1",
        "cron": "*/5 * * * *",
        "job_name": "processData",
        "param": ["a"],
        "created_at": LONG_AGO,
        "updated_at": LONG_AGO,
        "overlap": "allow",
        "timezone": "UTC",
        "misfire_grace_ms": 60_000,
    }
    values.update(overrides)
    return Schedule(**values)  # type: ignore[arg-type]


def attempt(start: datetime, status: JobStatus = JobStatus.SUCCESS) -> LatestAttempt:
    return LatestAttempt(
        schedule_id="s1", history_id=1, status=status, attempt=1, start_at=start,
        end_at=None if status is JobStatus.PROCESSING else start + timedelta(seconds=1), error=None,
    )  # fmt: skip


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 12, 1, hour, minute, tzinfo=UTC)


def missed(
    schedule: Schedule, last: LatestAttempt | None, recorded: datetime | None = None
) -> list[datetime]:
    found = missed_of_row(
        schedule, cron=str(schedule.cron), zone="UTC", grace_s=60, last=last,
        last_recorded=recorded, now=NOW,
    )  # fmt: skip
    return [item.due_at for item in found]


def test_due_times_walk_back_from_until_to_after_exclusive() -> None:
    assert list(due_times("*/5 * * * *", "UTC", at(9, 50), at(10, 5))) == [
        at(10, 5), at(10, 0), at(9, 55),
    ]  # fmt: skip


def test_every_due_time_since_the_last_attempt_and_past_its_grace_is_missed() -> None:
    assert missed(row(), attempt(at(9, 50) + timedelta(seconds=3))) == [
        at(10, 5),
        at(10, 0),
        at(9, 55),
    ]


def test_due_times_before_the_last_attempt_started_were_run() -> None:
    assert missed(row(), attempt(at(10, 5) + timedelta(seconds=40))) == []
    assert missed(row(), attempt(at(10, 5))) == []


def test_due_times_already_recorded_are_not_found_again() -> None:
    assert missed(row(), attempt(at(9, 50)), recorded=at(10, 0)) == [at(10, 5)]


def test_a_row_created_or_edited_after_a_due_time_was_not_due_then() -> None:
    assert missed(row(created_at=at(10, 1), updated_at=at(10, 1)), None) == [at(10, 5)]
    assert missed(row(updated_at=at(10, 6)), attempt(at(9, 0))) == []


def test_runs_dropped_while_the_previous_runs_with_overlap_skip_are_not_missed() -> None:
    running = attempt(at(9, 50), JobStatus.PROCESSING)
    assert missed(row(overlap="skip"), running) == []
    assert missed(row(overlap="allow"), running) != []


def test_a_long_outage_records_at_most_a_bounded_number_of_due_times_per_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(missed_runs, "LOOKBACK", timedelta(days=1))
    every_minute = row(cron="* * * * *")
    assert len(missed(every_minute, attempt(at(0, 0)))) == MAX_DUE_PER_ROW


def test_detect_skips_paused_and_invalid_rows_and_uses_the_default_grace() -> None:
    rows = [
        row(id="active", misfire_grace_ms=None),
        row(id="paused", is_active=False),
        row(id="invalid", job_name="noSuchJob"),
    ]
    found = detect(
        rows, latest={}, recorded={}, known_jobs=KNOWN, default_zone="UTC",
        default_grace_ms=180_000, now=NOW,
    )  # fmt: skip

    # With a 3-minute grace the 10:05 run is not missed yet at 10:07:30.
    assert {item.schedule_id for item in found} == {"active"}
    assert max(item.due_at for item in found) == at(10, 0)


def test_due_times_older_than_the_lookback_are_not_reported() -> None:
    daily = row(cron="0 3 * * *")  # due at 03:00, never ran: long past the one-hour lookback
    assert missed(daily, None) == []
