"""When a schedule's due run counts as missed (pure: fixed instants)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobctl.maintenance import Maintenance
from jobctl.records import Schedule
from jobctl.status import (
    REJECTED,
    missed_due_time,
    next_run_after_pauses,
    previous_fire,
    statuses,
)

NOW = datetime(2026, 12, 1, 10, 7, 30, tzinfo=UTC)
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def row(**overrides: object) -> Schedule:
    values: dict[str, object] = {
        "id": "s1",
        "cron": "*/5 * * * *",
        "job_name": "processData",
        "created_at": LONG_AGO,
        "updated_at": LONG_AGO,
        "overlap": "allow",
    }
    values.update(overrides)
    return Schedule(**values)  # type: ignore[arg-type]


def missed(
    schedule: Schedule, *, last_start: datetime | None, running: bool = False, grace_s: float = 60
) -> datetime | None:
    return missed_due_time(
        schedule,
        cron=str(schedule.cron),
        zone="Europe/Berlin",
        grace_s=grace_s,
        last_start=last_start,
        last_running=running,
        now=NOW,
    )


def test_previous_fire_is_the_last_fire_at_or_before_the_instant_in_the_zone() -> None:
    assert previous_fire("*/5 * * * *", "UTC", NOW) == datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
    assert previous_fire("*/5 * * * *", "UTC", NOW.replace(minute=5, second=0)) == NOW.replace(
        minute=5, second=0
    )
    # 09:00 in Berlin is 08:00 UTC in winter.
    daily = previous_fire("0 9 * * *", "Europe/Berlin", NOW)
    assert daily.astimezone(UTC) == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_a_due_time_past_its_grace_without_an_attempt_is_missed() -> None:
    due = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
    assert missed(row(), last_start=due - timedelta(minutes=5)) == due
    assert missed(row(), last_start=None) == due


def test_an_attempt_started_after_the_due_time_even_late_means_not_missed() -> None:
    due = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
    assert missed(row(), last_start=due + timedelta(seconds=50)) is None


def test_an_attempt_started_a_moment_before_the_due_time_is_its_run() -> None:
    """Found by trying it: a worker started the 10:05 run it took ahead at 10:04:59.6, and
    status said missed, "no attempt started"."""
    due = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
    assert missed(row(), last_start=due - timedelta(seconds=0.4)) is None
    assert missed(row(), last_start=due - timedelta(seconds=29)) is None
    # Earlier is the previous fire time's run, even for a cron of every minute.
    assert missed(row(), last_start=due - timedelta(seconds=31)) == due
    every_minute = row(cron="* * * * *")
    six = datetime(2026, 12, 1, 10, 6, tzinfo=UTC)
    assert missed(every_minute, last_start=six - timedelta(seconds=20)) is None
    assert missed(every_minute, last_start=six - timedelta(seconds=40)) == six


def test_a_due_time_still_within_its_grace_is_not_missed_yet() -> None:
    # 10:05 is 2.5 minutes ago: with a grace of 5 minutes, the last due time judged is 10:00.
    ten = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert missed(row(), last_start=ten + timedelta(seconds=1), grace_s=300) is None


@pytest.mark.parametrize("field", ["created_at", "updated_at"])
def test_a_row_created_or_enabled_after_the_due_time_was_not_due(field: str) -> None:
    changed = row(**{field: datetime(2026, 12, 1, 10, 6, tzinfo=UTC)})
    assert missed(changed, last_start=None) is None


def test_a_run_dropped_because_the_previous_one_still_runs_with_overlap_skip_is_not_missed() -> (
    None
):
    earlier = datetime(2026, 12, 1, 9, 50, tzinfo=UTC)
    assert missed(row(overlap="skip"), last_start=earlier, running=True) is None
    assert missed(row(overlap="allow"), last_start=earlier, running=True) is not None


def pause_on(started: datetime, until: datetime | None) -> Maintenance:
    return Maintenance(
        id=1, reason="upgrade", set_by="cli:ops", started_at=started, until=until,
        ended_at=None, ended_by=None, caught_up_at=None,
    )  # fmt: skip


NEXT_FIVE = datetime(2026, 12, 1, 10, 10, tzinfo=UTC)  # */5's next fire after NOW


@pytest.mark.parametrize(
    ("pauses", "expected"),
    [
        pytest.param([], NEXT_FIVE, id="no pause"),
        pytest.param([pause_on(NOW - timedelta(minutes=1), None)], None, id="until resumed"),
        pytest.param(
            [pause_on(NOW - timedelta(minutes=1), NOW + timedelta(minutes=20))],
            NOW + timedelta(minutes=20),
            id="falls due during it: its catch-up at the end",
        ),
        pytest.param(
            [pause_on(NOW - timedelta(seconds=10), NOW + timedelta(seconds=30))],
            NEXT_FIVE,
            id="ends before the next fire",
        ),
        pytest.param(
            [pause_on(LONG_AGO, NOW - timedelta(minutes=1))], NEXT_FIVE, id="one that ended"
        ),
    ],
)
def test_the_next_run_during_a_maintenance_pause(
    pauses: list[Maintenance], expected: datetime | None
) -> None:
    assert next_run_after_pauses("*/5 * * * *", "UTC", NEXT_FIVE, pauses, NOW) == expected


def test_a_row_whose_alert_target_the_last_sync_found_no_block_for_is_rejected() -> None:
    """Only the sync asks Prefect whether an alertTo names a block; status reads what it
    found. A target the sync did not find (or found since) leaves its rows as they are."""
    gone = "custom-webhook/gone"
    problems = {gone: f"alertTo {gone!r} names no Prefect notification block"}
    rows = [
        row(id="own target", alert_to=gone),
        row(id="default target"),
        row(id="other target", alert_to="custom-webhook/oncall"),
        row(id="disabled", alert_to=gone, is_active=False),
    ]

    found = {
        line.schedule_id: line
        for line in statuses(
            rows, latest={}, successes={}, known_jobs={"processData"}, default_zone="UTC",
            default_grace_ms=60_000, now=NOW, alert_target_problems=problems,
            default_alert_to=gone,
        )
    }  # fmt: skip

    for rejected in ("own target", "default target", "disabled"):
        assert found[rejected].state == REJECTED
        assert found[rejected].reason == problems[gone]
        assert found[rejected].next_fire_at is None
    assert found["other target"].state != REJECTED
    assert found["other target"].next_fire_at is not None
