"""The maintenance pause's pure parts: ``--until``, which times it covers, the catch-up."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from deployments.catch_up import catch_ups
from jobctl import errors, maintenance
from jobctl.maintenance import Maintenance
from tests.unit.test_plan import make_spec

NOW = datetime(2026, 12, 1, 10, 0, 30, tzinfo=UTC)


def pause(
    started_at: datetime,
    *,
    until: datetime | None = None,
    ended_at: datetime | None = None,
    pause_id: int = 1,
) -> Maintenance:
    return Maintenance(
        id=pause_id,
        reason="db upgrade",
        set_by="ops",
        started_at=started_at,
        until=until,
        ended_at=ended_at,
        ended_by=None if ended_at is None else "ops",
        caught_up_at=None,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW + timedelta(seconds=90)),
        ("15m", NOW + timedelta(minutes=15)),
        (" 2h ", NOW + timedelta(hours=2)),
        ("1d", NOW + timedelta(days=1)),
        ("1.5h", NOW + timedelta(minutes=90)),
        ("2026-12-01T12:00:00Z", datetime(2026, 12, 1, 12, tzinfo=UTC)),
        ("2026-12-01T13:00:00+01:00", datetime(2026, 12, 1, 12, tzinfo=UTC)),
        ("2026-12-01 12:00", datetime(2026, 12, 1, 12, tzinfo=UTC)),  # no zone: UTC
    ],
)
def test_until_is_an_iso_time_or_a_duration_from_now(text: str, expected: datetime) -> None:
    assert maintenance.parse_until(text, NOW) == expected


@pytest.mark.parametrize("text", ["soon", "90", "-5m", "2026-13-01", "", "5 weeks"])
def test_an_until_that_is_neither_is_refused_with_both_forms_named(text: str) -> None:
    with pytest.raises(errors.InvalidInput, match=r"ISO-8601.*duration"):
        maintenance.parse_until(text, NOW)


@pytest.mark.parametrize("text", ["99999999999999999999d", "9999-12-31T23:59:59-05:00"])
def test_an_until_beyond_what_a_time_holds_is_refused(text: str) -> None:
    with pytest.raises(errors.InvalidInput, match=r"too far ahead|out of range"):
        maintenance.parse_until(text, NOW)


@pytest.mark.parametrize("text", ["2026-12-01T09:00:00Z", "0s"])
def test_an_until_in_the_past_is_refused(text: str) -> None:
    with pytest.raises(errors.InvalidInput, match="already passed"):
        maintenance.parse_until(text, NOW)


@pytest.mark.parametrize("reason", ["", "   ", "a\x00b"])
def test_a_pause_needs_a_storable_reason(reason: str) -> None:
    with pytest.raises(errors.InvalidInput):
        maintenance.checked_reason(reason)


def test_a_pause_is_on_until_it_ends_or_its_until_passes() -> None:
    open_ended = pause(NOW - timedelta(hours=1))
    timed = pause(NOW - timedelta(hours=1), until=NOW + timedelta(seconds=1))
    ended = pause(NOW - timedelta(hours=1), ended_at=NOW - timedelta(minutes=1))

    assert open_ended.is_on(NOW) and open_ended.end(NOW) is None
    assert timed.is_on(NOW) and not timed.is_on(NOW + timedelta(seconds=1))
    assert timed.end(NOW + timedelta(hours=1)) == NOW + timedelta(seconds=1)
    assert not ended.is_on(NOW) and ended.end(NOW) == NOW - timedelta(minutes=1)


def test_covered_holds_for_times_inside_a_pause_only() -> None:
    pauses = [
        pause(NOW - timedelta(hours=2), ended_at=NOW - timedelta(hours=1)),
        pause(NOW - timedelta(minutes=5)),  # on: covers up to now
    ]

    assert maintenance.covered(NOW - timedelta(minutes=90), pauses, NOW)
    assert not maintenance.covered(NOW - timedelta(minutes=30), pauses, NOW)
    assert maintenance.covered(NOW - timedelta(minutes=1), pauses, NOW)
    assert not maintenance.covered(NOW + timedelta(minutes=1), pauses, NOW)


def test_latest_fire_between_is_the_last_fire_time_inside_the_window() -> None:
    start, end = (
        datetime(2026, 12, 1, 9, 0, 30, tzinfo=UTC),
        datetime(2026, 12, 1, 9, 3, 10, tzinfo=UTC),
    )

    assert maintenance.latest_fire_between("* * * * *", "UTC", start, end) == datetime(
        2026, 12, 1, 9, 3, tzinfo=UTC
    )
    assert maintenance.latest_fire_between("0 0 1 1 *", "UTC", start, end) is None
    # In the row's zone: 10:00 in Paris is 09:00 UTC.
    assert maintenance.latest_fire_between(
        "0 10 * * *", "Europe/Paris", start - timedelta(hours=1), end
    ) == datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_each_active_row_due_during_a_pause_catches_up_once_for_its_latest_fire_time() -> None:
    ended = pause(NOW - timedelta(minutes=10), ended_at=NOW - timedelta(seconds=20))
    specs = {
        "every-minute": make_spec("every-minute"),
        "disabled": make_spec("disabled", paused=True),
        "yearly": dataclasses.replace(make_spec("yearly"), cron="0 0 1 1 *"),
        "created-late": make_spec("created-late"),
    }
    specs["every-minute"] = dataclasses.replace(specs["every-minute"], cron="* * * * *")
    created = {"created-late": NOW - timedelta(seconds=25)}  # after the last fire time

    found = catch_ups([ended], specs, created, NOW)

    assert [(c.schedule_id, c.due_at) for c in found] == [
        ("every-minute", datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    ]


def test_two_pauses_not_caught_up_yet_still_give_one_run_per_row() -> None:
    first = pause(NOW - timedelta(minutes=30), ended_at=NOW - timedelta(minutes=25), pause_id=1)
    second = pause(NOW - timedelta(minutes=10), ended_at=NOW - timedelta(minutes=1), pause_id=2)
    specs = {"a": dataclasses.replace(make_spec("a"), cron="* * * * *")}

    found = catch_ups([first, second], specs, {}, NOW)

    assert len(found) == 1 and found[0].pause_id == 2
    assert found[0].due_at == datetime(2026, 12, 1, 9, 59, tzinfo=UTC)
    assert found[0].idempotency_key == "jobctl-catch-up-2-a"


def test_a_pause_still_on_is_not_caught_up() -> None:
    specs = {"a": dataclasses.replace(make_spec("a"), cron="* * * * *")}

    assert catch_ups([pause(NOW - timedelta(minutes=10))], specs, {}, NOW) == []
