"""The fire times of a backfill: those of the forward schedule, DST included, and its limits."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobctl import backfill_plan, cron
from jobctl.errors import BackfillRefused

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2030, 1, 1, tzinfo=UTC)
SPRING_FORWARD = (datetime(2027, 3, 28, tzinfo=BERLIN), datetime(2027, 3, 29, tzinfo=BERLIN))
FALL_BACK = (datetime(2027, 10, 31, tzinfo=BERLIN), datetime(2027, 11, 1, tzinfo=BERLIN))


def _fires(
    expression: str, zone: str, day: tuple[datetime, datetime], **kwargs: int
) -> list[datetime]:
    return backfill_plan.fire_times(expression, zone, *day, now=NOW, **kwargs)


def test_an_hourly_row_fires_once_per_existing_hour_of_the_spring_forward_night():
    fires = _fires("0 * * * *", "Europe/Berlin", SPRING_FORWARD)

    assert len(fires) == 23
    assert [f.strftime("%H:%M %Z") for f in fires[:3]] == ["00:00 CET", "01:00 CET", "03:00 CEST"]
    gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in itertools.pairwise(fires)}
    assert gaps == {timedelta(hours=1)}


def test_an_hourly_row_fires_through_both_passes_of_the_fall_back_hour():
    fires = _fires("0 * * * *", "Europe/Berlin", FALL_BACK)

    assert len(fires) == 25
    assert [f.strftime("%H:%M %Z") for f in fires[2:4]] == ["02:00 CEST", "02:00 CET"]


@pytest.mark.parametrize(
    ("expression", "zone", "day", "count"),
    [
        ("*/15 * * * *", "Europe/Berlin", FALL_BACK, 100),
        ("30 2 * * *", "Europe/Berlin", FALL_BACK, 1),
        ("0 */2 * * *", "Europe/Berlin", FALL_BACK, 12),
        ("*/15 * * * *", "Europe/Berlin", SPRING_FORWARD, 92),
        ("30 2 * * *", "Europe/Berlin", SPRING_FORWARD, 1),
        (
            "*/15 * * * *",
            "Australia/Lord_Howe",
            (
                datetime(2027, 4, 4, tzinfo=ZoneInfo("Australia/Lord_Howe")),
                datetime(2027, 4, 5, tzinfo=ZoneInfo("Australia/Lord_Howe")),
            ),
            98,
        ),
    ],
)
def test_counts_match_the_dst_table_of_the_docs(
    expression: str, zone: str, day: tuple[datetime, datetime], count: int
):
    assert len(_fires(expression, zone, day)) == count


# Around the spring-forward of Berlin and the fall-back of Lord Howe; around the
# fall-backs of Berlin and New York.
RANGES = [
    (datetime(2027, 3, 26, tzinfo=UTC), datetime(2027, 4, 6, tzinfo=UTC)),
    (datetime(2027, 10, 29, tzinfo=UTC), datetime(2027, 11, 9, tzinfo=UTC)),
]


@pytest.mark.parametrize("expression", ["0 * * * 1-5", "15 * * * *", "30 2 * * *"])
@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize(("start", "end"), RANGES, ids=["spring", "fall"])
def test_fire_times_are_those_the_forward_schedule_lists(
    expression: str, zone: str, start: datetime, end: datetime
):
    fires = backfill_plan.fire_times(expression, zone, start, end, max_runs=10_000, now=NOW)

    # The same code path as `schedule list`, walked from the start in one go.
    forward = cron.next_fire_times(expression, zone, start - timedelta(seconds=1), len(fires) + 1)
    assert fires == forward[:-1]
    assert forward[-1] >= end
    assert len({f.astimezone(UTC) for f in fires}) == len(fires)  # no instant twice


def test_the_range_includes_its_start_and_excludes_its_end():
    start = datetime(2027, 1, 1, 10, tzinfo=UTC)

    fires = backfill_plan.fire_times("0 * * * *", "UTC", start, start + timedelta(hours=3), now=NOW)

    assert [f.hour for f in fires] == [10, 11, 12]


def test_a_range_with_no_fire_time_gives_none():
    start = datetime(2027, 1, 1, 10, 1, tzinfo=UTC)

    assert (
        backfill_plan.fire_times("0 * * * *", "UTC", start, start + timedelta(minutes=30), now=NOW)
        == []
    )


def test_more_fire_times_than_max_runs_is_refused_with_a_clear_message():
    start = datetime(2027, 1, 1, tzinfo=UTC)

    with pytest.raises(BackfillRefused) as raised:
        backfill_plan.fire_times("* * * * *", "UTC", start, start + timedelta(days=1), now=NOW)

    assert str(raised.value) == (
        "the range 2027-01-01T00:00:00Z to 2027-01-02T00:00:00Z holds more than 1,000 fire "
        "times of '* * * * *' in UTC: narrow it, or raise the limit (--max-runs, maxRuns)"
    )


def test_exactly_max_runs_fire_times_is_allowed():
    fires = _fires("0 * * * *", "Europe/Berlin", SPRING_FORWARD, max_runs=23)

    assert len(fires) == 23
    with pytest.raises(BackfillRefused, match="more than 22 fire times"):
        _fires("0 * * * *", "Europe/Berlin", SPRING_FORWARD, max_runs=22)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (datetime(2027, 1, 2, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), "the range is empty"),
        (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), "the range is empty"),
        (datetime(2029, 12, 31, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC), "after now"),
        (datetime(1, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), "before 1970"),
    ],
)
def test_an_empty_reversed_future_or_ancient_range_is_refused(
    start: datetime, end: datetime, message: str
):
    with pytest.raises(BackfillRefused, match=message):
        backfill_plan.fire_times("0 * * * *", "UTC", start, end, now=NOW)


def test_max_runs_below_one_is_refused():
    with pytest.raises(BackfillRefused, match="at least 1"):
        _fires("0 * * * *", "UTC", SPRING_FORWARD, max_runs=0)


def test_naive_times_are_a_programming_error():
    with pytest.raises(ValueError, match="timezone-aware"):
        backfill_plan.fire_times(
            "0 * * * *",
            "UTC",
            datetime(2027, 1, 1),  # noqa: DTZ001
            datetime(2027, 1, 2),  # noqa: DTZ001
            now=NOW,
        )


def test_the_origin_and_the_idempotency_key_name_the_range_and_the_fire_time_in_utc():
    start, end = SPRING_FORWARD
    fire = datetime(2027, 3, 28, 3, tzinfo=BERLIN)

    assert backfill_plan.origin(start, end) == "backfill 2027-03-27T23:00:00Z/2027-03-28T22:00:00Z"
    assert backfill_plan.tag(start, end) == "backfill:2027-03-27T23:00:00Z/2027-03-28T22:00:00Z"
    assert (
        backfill_plan.idempotency_key("row-1", fire) == "jobctl-backfill row-1 2027-03-28T01:00:00Z"
    )
