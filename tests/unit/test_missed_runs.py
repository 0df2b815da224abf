"""Which due times of a row are missed (pure: fixed instants)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobctl.models import JobStatus
from jobctl.prefect import missed_runs
from jobctl.prefect.missed_runs import MAX_DUE_PER_ROW, detect, due_times, missed_of_row
from jobctl.records import Schedule
from jobctl.status_queries import RecentAttempt

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


def attempt(
    start: datetime, status: JobStatus = JobStatus.SUCCESS, number: int = 1
) -> RecentAttempt:
    end = None if status is JobStatus.PROCESSING else start + timedelta(seconds=1)
    return RecentAttempt(start_at=start, end_at=end, status=status, attempt=number)


def at(hour: int, minute: int, second: float = 0) -> datetime:
    return datetime(2026, 12, 1, hour, minute, tzinfo=UTC) + timedelta(seconds=second)


def every_five_minutes_from(
    start: datetime, until: datetime, late_s: float = 0.5
) -> list[RecentAttempt]:
    """One attempt per due time of ``*/5`` from ``start`` to ``until``, ``late_s`` late."""
    found, due = [], start
    while due <= until:
        found.append(attempt(due + timedelta(seconds=late_s)))
        due += timedelta(minutes=5)
    return found


def missed(
    schedule: Schedule,
    attempts: list[RecentAttempt],
    recorded: datetime | None = None,
    grace_s: float = 60,
) -> list[datetime]:
    found = missed_of_row(
        schedule, cron=str(schedule.cron), zone="UTC", grace_s=grace_s, attempts=attempts,
        last_recorded=recorded, now=NOW,
    )  # fmt: skip
    return [item.due_at for item in found]


def test_due_times_walk_back_from_until_to_after_exclusive() -> None:
    assert list(due_times("*/5 * * * *", "UTC", at(9, 50), at(10, 5))) == [
        at(10, 5), at(10, 0), at(9, 55),
    ]  # fmt: skip


def test_every_due_time_since_the_last_attempt_and_past_its_grace_is_missed() -> None:
    ran = every_five_minutes_from(at(9, 10), at(9, 50))
    assert missed(row(), ran) == [at(10, 5), at(10, 0), at(9, 55)]


def test_a_due_time_whose_attempt_started_within_its_grace_was_run() -> None:
    assert missed(row(), every_five_minutes_from(at(9, 10), at(10, 5), late_s=40)) == []
    assert missed(row(), every_five_minutes_from(at(9, 10), at(10, 5), late_s=0)) == []


def test_a_due_time_between_two_runs_with_no_run_of_its_own_is_missed() -> None:
    """Chaos soak, seed 18: a cron edit's deployment update deleted the row's next run and
    Prefect's scheduler made the following ones only; the row ran again a minute later,
    and the gap was never reported (the due times before the last start counted as run)."""
    every_minute = row(cron="* * * * *")
    ran = [attempt(at(9, 8) + timedelta(minutes=n, seconds=0.4)) for n in range(59)]
    gap = [a for a in ran if a.start_at.minute != 41]
    assert missed(every_minute, gap) == [at(9, 41)]


def test_a_run_that_waited_past_the_next_due_time_stands_for_its_own() -> None:
    """With a grace longer than the interval, each start takes the latest due time it can:
    the gap is the due time without a run, not the last one."""
    every_minute = row(cron="* * * * *")
    ran = [attempt(at(10, minute, 0.4)) for minute in (0, 2, 3, 4, 5)]
    ran.append(attempt(at(10, 1, 50)))  # the 10:01 run, 50 s late
    ran.append(attempt(at(9, 59, 70)))  # the 09:59 run started after 10:00's
    found = missed(every_minute, ran, recorded=at(9, 58), grace_s=120)
    assert found == []
    without_10_03 = [a for a in ran if a.start_at != at(10, 3, 0.4)]
    assert missed(every_minute, without_10_03, recorded=at(9, 58), grace_s=120) == [at(10, 3)]


def test_retries_stand_for_no_due_time() -> None:
    ran = every_five_minutes_from(at(9, 10), at(9, 55))
    retry = attempt(at(10, 0, 20), JobStatus.FAILED, number=2)
    assert missed(row(), [*ran, retry]) == [at(10, 5), at(10, 0)]


def test_due_times_already_recorded_are_not_found_again() -> None:
    ran = every_five_minutes_from(at(9, 10), at(9, 50))
    assert missed(row(), ran, recorded=at(10, 0)) == [at(10, 5)]


def test_a_row_created_or_edited_after_a_due_time_was_not_due_then() -> None:
    assert missed(row(created_at=at(10, 1), updated_at=at(10, 1)), []) == [at(10, 5)]
    assert missed(row(updated_at=at(10, 6)), [attempt(at(9, 0))]) == []


def test_runs_dropped_while_the_previous_runs_with_overlap_skip_are_not_missed() -> None:
    ran = every_five_minutes_from(at(9, 10), at(9, 45))
    running = attempt(at(9, 50, 1), JobStatus.PROCESSING)
    assert missed(row(overlap="skip"), [*ran, running]) == []
    assert missed(row(overlap="allow"), [*ran, running]) == [at(10, 5), at(10, 0), at(9, 55)]
    # An attempt that ended no longer covers what came after it.
    ended = attempt(at(9, 50, 1))
    assert missed(row(overlap="skip"), [*ran, ended]) == [at(10, 5), at(10, 0), at(9, 55)]


def test_a_long_outage_records_at_most_a_bounded_number_of_due_times_per_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(missed_runs, "LOOKBACK", timedelta(days=1))
    every_minute = row(cron="* * * * *")
    assert len(missed(every_minute, [attempt(at(0, 0))])) == MAX_DUE_PER_ROW


def test_detect_skips_paused_and_invalid_rows_and_uses_the_default_grace() -> None:
    rows = [
        row(id="active", misfire_grace_ms=None, alert_to="custom-webhook/oncall"),
        row(id="paused", is_active=False),
        row(id="invalid", job_name="noSuchJob"),
        # Rejected by the sync, which found no block for their alert target: not run, so
        # not missed either (as the invalid row).
        row(id="alerts nowhere", alert_to="custom-webhook/gone"),
        row(id="alerts nowhere by default"),
    ]
    found = detect(
        rows, attempts={}, recorded={}, known_jobs=KNOWN, default_zone="UTC",
        default_grace_ms=180_000, now=NOW,
        alert_target_problems={"custom-webhook/gone": "no block", "slack-webhook/ops": "none"},
        default_alert_to="slack-webhook/ops",
    )  # fmt: skip

    # With a 3-minute grace the 10:05 run is not missed yet at 10:07:30.
    assert {item.schedule_id for item in found} == {"active"}
    assert max(item.due_at for item in found) == at(10, 0)


def test_due_times_older_than_the_lookback_are_not_reported() -> None:
    daily = row(cron="0 3 * * *")  # due at 03:00, never ran: long past the one-hour lookback
    assert missed(daily, []) == []
