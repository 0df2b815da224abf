from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from jobctl import cron

BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


# -- normalize_cron ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("*/5 * * * *", "*/5 * * * *"),
        ("0 3 * * 1-5", "0 3 * * 1-5"),
        ("15,45 8-18 1 */2 MON", "15,45 8-18 1 */2 MON"),
        ("  0   3 * *  * ", "0 3 * * *"),
        ("0\t3\t*\t*\t*\n", "0 3 * * *"),
    ],
)
def test_normalize_cron_keeps_five_fields_with_single_spaces(expression: str, expected: str):
    assert cron.normalize_cron(expression) == expected


@pytest.mark.parametrize(
    "alias", ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"]
)
def test_normalize_cron_accepts_aliases(alias: str):
    assert cron.normalize_cron(alias) == alias


def test_normalize_cron_lowercases_aliases_and_strips_whitespace():
    assert cron.normalize_cron("  @DAILY\n") == "@daily"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 */5 * * * *", "*/5 * * * *"),
        ("0 0 12 * * 1-5", "0 12 * * 1-5"),
        ("0 30 2 1 1 *", "30 2 1 1 *"),
    ],
)
def test_normalize_cron_converts_six_fields_with_zero_seconds(expression: str, expected: str):
    assert cron.normalize_cron(expression) == expected


@pytest.mark.parametrize("expression", ["*/10 * * * * *", "30 * * * * *", "* * * * * *"])
def test_normalize_cron_rejects_sub_minute_six_field_crons(expression: str):
    with pytest.raises(cron.InvalidCron, match="sub-minute"):
        cron.normalize_cron(expression)


@pytest.mark.parametrize(
    ("expression", "zone"),
    [
        ("CRON_TZ=Asia/Taipei 0 9 * * *", "Asia/Taipei"),
        ("TZ=UTC 0 9 * * 1-5", "UTC"),
        ("cron_tz=Europe/Paris 0 0 9 * * *", "Europe/Paris"),
    ],
)
def test_normalize_cron_points_a_time_zone_prefix_to_the_rows_timezone(expression: str, zone: str):
    with pytest.raises(cron.InvalidCron, match=f"set the row's timezone to '{zone}'"):
        cron.normalize_cron(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "not a valid cron"),
        ("0 24 * * *", "not a valid cron"),
        ("* * 32 * *", "not a valid cron"),
        ("* * * 13 *", "not a valid cron"),
        ("0 61 * * * *", "not a valid cron"),
        ("* * * *", "has 4 fields"),
        ("0 0 * * * * 2026", "has 7 fields"),
        ("every day", "has 2 fields"),
        ("", "empty"),
        ("   \t\n", "empty"),
        ("@reboot", "unknown alias"),
        ("@every 5m", "unknown alias"),
        # croniter takes these, Prefect does not: the sync would fail applying them.
        ("R * * * *", "refused by Prefect"),
        ("0 0 1W * *", "refused by Prefect"),
        # Valid fields, but no such date: the deployment would never run.
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4 *", "never fires"),
    ],
)
def test_normalize_cron_rejects_invalid_expressions(expression: str, message: str):
    with pytest.raises(cron.InvalidCron, match=message):
        cron.normalize_cron(expression)


def test_invalid_cron_is_a_value_error():
    assert issubclass(cron.InvalidCron, ValueError)


# -- next_fire_times ---------------------------------------------------------------------


def test_next_fire_times_lists_fire_times_after_at():
    times = cron.next_fire_times("*/15 * * * *", "UTC", at=utc(2026, 1, 1, 0, 7))

    assert times == [utc(2026, 1, 1, 0, 15), utc(2026, 1, 1, 0, 30), utc(2026, 1, 1, 0, 45)]


def test_next_fire_times_excludes_at_itself():
    times = cron.next_fire_times("*/15 * * * *", "UTC", at=utc(2026, 1, 1, 0, 15), count=1)

    assert times == [utc(2026, 1, 1, 0, 30)]


def test_next_fire_times_returns_count_times():
    assert len(cron.next_fire_times("* * * * *", "UTC", at=utc(2026, 1, 1), count=7)) == 7


def test_next_fire_times_evaluates_cron_in_the_given_zone():
    times = cron.next_fire_times("0 9 * * *", "America/New_York", at=utc(2026, 1, 15, 12), count=2)

    assert [t.astimezone(UTC) for t in times] == [utc(2026, 1, 15, 14), utc(2026, 1, 16, 14)]
    assert all(t.utcoffset() is not None for t in times)
    assert all(str(t.tzinfo) == "America/New_York" for t in times)


def test_next_fire_times_converts_at_from_another_zone():
    at = datetime(2026, 1, 1, 1, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 2025-12-31 16:00 UTC

    times = cron.next_fire_times("0 17 * * *", "UTC", at=at, count=1)

    assert [t.astimezone(UTC) for t in times] == [utc(2025, 12, 31, 17)]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("@hourly", [utc(2026, 1, 1, 11), utc(2026, 1, 1, 12)]),
        ("@daily", [utc(2026, 1, 2), utc(2026, 1, 3)]),
        ("@weekly", [utc(2026, 1, 4), utc(2026, 1, 11)]),
        ("@monthly", [utc(2026, 2, 1), utc(2026, 3, 1)]),
        ("@yearly", [utc(2027, 1, 1), utc(2028, 1, 1)]),
        ("@annually", [utc(2027, 1, 1), utc(2028, 1, 1)]),
    ],
)
def test_next_fire_times_understands_aliases(expression: str, expected: list[datetime]):
    times = cron.next_fire_times(expression, "UTC", at=utc(2026, 1, 1, 10, 30), count=2)

    assert times == expected


def test_next_fire_times_reads_six_fields_as_seconds_first():
    times = cron.next_fire_times("0 0 12 * * *", "UTC", at=utc(2026, 1, 1), count=2)

    assert times == [utc(2026, 1, 1, 12), utc(2026, 1, 2, 12)]


def test_next_fire_times_refuses_naive_at():
    with pytest.raises(ValueError, match="timezone-aware"):
        cron.next_fire_times("* * * * *", "UTC", at=datetime(2026, 1, 1))  # noqa: DTZ001


def test_next_fire_times_rejects_invalid_cron():
    with pytest.raises(cron.InvalidCron, match="sub-minute"):
        cron.next_fire_times("*/10 * * * * *", "UTC", at=utc(2026, 1, 1))


def test_next_fire_times_keeps_local_time_across_spring_forward():
    times = cron.next_fire_times("0 9 * * *", "Europe/Berlin", at=utc(2026, 3, 27, 12))

    assert times == [berlin(2026, 3, 28, 9), berlin(2026, 3, 29, 9), berlin(2026, 3, 30, 9)]
    assert [t.astimezone(UTC) for t in times] == [
        utc(2026, 3, 28, 8),
        utc(2026, 3, 29, 7),
        utc(2026, 3, 30, 7),
    ]


# DESIGN.md: "DST behaviour is Prefect's". The expected instants below are what Prefect
# 3.9's CronSchedule.get_dates returns for the same cron, zone and start.


def test_next_fire_times_shifts_a_time_skipped_by_spring_forward_like_prefect():
    # 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist.
    times = cron.next_fire_times("30 2 * * *", "Europe/Berlin", at=utc(2026, 3, 27, 12))

    assert [t.astimezone(UTC) for t in times] == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 30),  # 03:30 CEST: the skipped 02:30 shifted by the gap
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


def test_next_fire_times_fires_once_on_a_time_repeated_by_fall_back_like_prefect():
    # 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice.
    times = cron.next_fire_times("30 2 * * *", "Europe/Berlin", at=utc(2026, 10, 23, 12))

    assert [t.astimezone(UTC) for t in times] == [
        utc(2026, 10, 24, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 0, 30),  # the first 02:30 (CEST) only
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
    ]


# -- the second pass of repeated hours (docs/schedules.md) --------------------------------

NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = "Australia/Lord_Howe"  # DST shifts the clock by 30 minutes


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("*/15 * * * *", True),
        ("30 * * * *", True),
        ("0 */1 * * 1-5", True),
        ("5 0-23 1 * *", True),
        ("@hourly", True),
        ("30 2 * * *", False),
        ("0 */2 * * *", False),
        ("*/5 1-3 * * *", False),
        ("@daily", False),
    ],
)
def test_covers_every_hour_reads_the_hour_field(expression: str, expected: bool):
    assert cron.covers_every_hour(expression) is expected


@pytest.mark.parametrize(
    ("zone", "year", "expected"),
    [
        ("Europe/Berlin", 2027, [cron.FallBack(utc(2027, 10, 31, 1), timedelta(hours=1))]),
        ("America/New_York", 2027, [cron.FallBack(utc(2027, 11, 7, 6), timedelta(hours=1))]),
        (LORD_HOWE, 2027, [cron.FallBack(utc(2027, 4, 3, 15), timedelta(minutes=30))]),
        ("UTC", 2027, []),
        ("Asia/Taipei", 2027, []),
    ],
)
def test_fall_backs_in_year_finds_when_clocks_go_back(
    zone: str, year: int, expected: list[cron.FallBack]
):
    assert list(cron.fall_backs_in_year(zone, year)) == expected


def test_upcoming_fall_backs_change_only_when_a_second_pass_ends():
    just_after_2026 = cron.upcoming_fall_backs("Europe/Berlin", utc(2026, 10, 25, 2))
    months_later = cron.upcoming_fall_backs("Europe/Berlin", utc(2027, 10, 31, 1, 59))
    after_2027 = cron.upcoming_fall_backs("Europe/Berlin", utc(2027, 10, 31, 2))

    assert [f.at for f in just_after_2026] == [utc(2027, 10, 31, 1), utc(2028, 10, 29, 1)]
    assert months_later == just_after_2026
    assert [f.at for f in after_2027] == [utc(2028, 10, 29, 1), utc(2029, 10, 28, 1)]


def test_upcoming_fall_backs_of_a_zone_without_dst_are_none():
    assert cron.upcoming_fall_backs("Asia/Kolkata", utc(2026, 12, 1)) == ()


@pytest.mark.parametrize(
    ("expression", "zone", "expected"),
    [
        # Rows with a day restriction (fall-backs are on Sundays here): without one, a
        # single UTC schedule does it (test_utc_equivalent_...).
        # Berlin 2027-10-31: 03:00 CEST -> 02:00 CET; the second 02:xx is 01:xx UTC.
        (
            "*/15 * * * 0",
            "Europe/Berlin",
            [utc(2027, 10, 31, 1, m) for m in (0, 15, 30, 45)],
        ),
        ("30 * * 10 *", "Europe/Berlin", [utc(2027, 10, 31, 1, 30)]),
        ("0 * * * SUN", "Europe/Berlin", [utc(2027, 10, 31, 1)]),
        # New York 2027-11-07: 02:00 EDT -> 01:00 EST; the second 01:xx is 06:xx UTC.
        ("20,40 * * 11 *", "America/New_York", [utc(2027, 11, 7, 6, 20), utc(2027, 11, 7, 6, 40)]),
        # Lord Howe 2027-04-04: 02:00 (+11) -> 01:30 (+10:30); the second 01:30-01:59 local
        # is 15:00-15:29 UTC on the 3rd: local minute 30 is UTC minute 0.
        ("*/15 * * * *", LORD_HOWE, [utc(2027, 4, 3, 15), utc(2027, 4, 3, 15, 15)]),
        ("0 * * * *", LORD_HOWE, []),  # 01:00 is not repeated there
    ],
)
def test_repeat_schedules_hold_the_second_pass_of_the_next_fall_back(
    expression: str, zone: str, expected: list[datetime]
):
    repeats = cron.repeat_schedules(expression, zone, utc(2026, 12, 1))

    if not expected:
        assert all(r.instants[0].year != 2027 for r in repeats)
        return
    first = repeats[0]
    assert list(first.instants) == expected
    assert first.rrule == "RDATE:" + ",".join(t.strftime("%Y%m%dT%H%M%SZ") for t in expected)
    assert len(repeats) == cron.UPCOMING_FALL_BACKS  # next year's too


@pytest.mark.parametrize("expression", ["30 2 * * *", "0 */2 * * *", "*/5 1-3 * * *", "@daily"])
def test_repeat_schedules_leave_fixed_hour_rows_alone(expression: str):
    assert cron.repeat_schedules(expression, "Europe/Berlin", utc(2026, 12, 1)) == ()


def test_repeat_schedules_skip_a_fall_back_on_a_day_the_cron_never_names():
    repeats = cron.repeat_schedules("*/15 * 31 10 *", "Europe/Berlin", utc(2026, 12, 1))

    # 2027-10-31 is a fall-back day; 2028's is the 29th, which the cron does not name.
    assert [r.instants[0].date() for r in repeats] == [date(2027, 10, 31)]


@pytest.mark.parametrize(
    ("expression", "zone"),
    [("*/15 * * * 0", "UTC"), ("*/15 * * * 0", "Asia/Taipei"), ("*/15 * * * *", "Europe/Berlin")],
)
def test_repeat_schedules_of_rows_that_need_none_are_none(expression: str, zone: str):
    # No DST; or one UTC schedule covers the row (utc_equivalent).
    assert cron.repeat_schedules(expression, zone, utc(2026, 12, 1)) == ()


@pytest.mark.parametrize(
    ("expression", "zone", "expected"),
    [
        ("*/15 * * * *", "Europe/Berlin", "*/15 * * * *"),
        ("@hourly", "America/New_York", "0 * * * *"),
        ("5 */1 * * *", "Europe/Berlin", "5 */1 * * *"),  # the row's own cron
        # Half-hour zones whose offsets keep their minutes: the minute field shifts.
        ("5,20 * * * *", "America/St_Johns", "35,50 * * * *"),  # -03:30 / -02:30
        ("5 * * * *", "Australia/Adelaide", "35 * * * *"),  # +09:30 / +10:30
        ("*/15 * * * *", "Antarctica/Troll", "*/15 * * * *"),  # +00 / +02
        # Not equivalent: a fixed hour, a day restriction, a 30-minute DST shift.
        ("30 2 * * *", "Europe/Berlin", None),
        ("*/15 * * * 1-5", "Europe/Berlin", None),
        ("*/15 * 31 10 *", "Europe/Berlin", None),
        ("*/15 * * * *", LORD_HOWE, None),
        # Not needed: no DST.
        ("*/15 * * * *", "UTC", None),
        ("*/15 * * * *", "Asia/Kolkata", None),
    ],
)
def test_utc_equivalent_of_rows_of_every_hour_without_day_restriction(
    expression: str, zone: str, expected: str | None
):
    assert cron.utc_equivalent(expression, zone, utc(2026, 12, 1)) == expected


@pytest.mark.parametrize(
    ("expression", "zone", "day"),
    [
        ("*/15 * * * *", "Europe/Berlin", date(2027, 10, 31)),
        ("30 * * * *", "Europe/Berlin", date(2027, 3, 28)),
        ("5,20 * * * *", "America/St_Johns", date(2027, 11, 7)),
        ("5,20 * * * *", "America/St_Johns", date(2027, 3, 14)),
        ("5 * * * *", "Australia/Adelaide", date(2027, 4, 4)),
        ("5 * * * *", "Australia/Adelaide", date(2027, 10, 3)),
    ],
)
def test_utc_equivalent_names_the_instants_of_the_policy_on_dst_days(
    expression: str, zone: str, day: date
):
    """The policy's instants (rule 1 and rule 3 of docs/schedules.md, from zoneinfo's
    fold) against what Prefect's CronSchedule makes of the UTC equivalent."""
    from prefect.server.schemas.schedules import CronSchedule

    start, end = _local_day_utc(zone, day)
    wanted: set[datetime] = set()
    instant = start
    while instant < end:
        if croniter.match(expression, instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)):
            wanted.add(instant)
        instant += timedelta(minutes=1)
    utc_cron = cron.utc_equivalent(expression, zone, utc(2026, 12, 1))
    assert utc_cron is not None
    dates = CronSchedule(cron=utc_cron, timezone="UTC")._get_dates_generator(
        n=500, start=start, end=end - timedelta(seconds=1)
    )

    assert sorted(datetime.fromtimestamp(d.timestamp(), UTC) for d in dates) == sorted(wanted)


def test_repeat_schedule_slug_says_when_it_stops_firing():
    (first, second) = cron.repeat_schedules("* * * * SUN", "Europe/Berlin", utc(2026, 12, 1))

    assert cron.repeat_slug_ends(first.slug) == utc(2027, 10, 31, 2)
    assert cron.repeat_slug_ends(second.slug) == utc(2028, 10, 29, 2)
    assert len(first.instants) == 60
    assert first.slug != second.slug
    assert cron.repeat_slug_ends("some-other-schedule") is None
    assert cron.repeat_slug_ends(cron.REPEAT_SLUG_PREFIX + "garbage") is None


def test_repeat_schedule_slug_differs_when_the_instants_differ():
    (every_15,) = cron.repeat_schedules("*/15 * 31 10 *", "Europe/Berlin", utc(2026, 12, 1))
    (every_20,) = cron.repeat_schedules("*/20 * 31 10 *", "Europe/Berlin", utc(2026, 12, 1))

    assert every_15.slug != every_20.slug


def _local_day_utc(zone: str, day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=ZoneInfo(zone))
    return start, end.astimezone(UTC)


def _fires_on(expression: str, zone: str, day: date) -> list[datetime]:
    start, end = _local_day_utc(zone, day)
    times = cron.next_fire_times(expression, zone, start - timedelta(seconds=1), count=200)
    fires = [t.astimezone(UTC) for t in times if t.astimezone(UTC) < end]
    assert len(fires) == len(set(fires)), "an instant listed twice"
    return fires


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("Europe/Berlin", date(2027, 10, 31), 25),
        ("America/New_York", date(2027, 11, 7), 25),
        ("Europe/Berlin", date(2027, 3, 28), 23),
        ("America/New_York", date(2027, 3, 14), 23),
    ],
)
def test_next_fire_times_keep_a_quarter_hour_rhythm_through_dst(zone: str, day: date, hours: int):
    fires = _fires_on("*/15 * * * *", zone, day)

    assert len(fires) == 4 * hours
    assert {b - a for a, b in itertools.pairwise(fires)} == {timedelta(minutes=15)}


def test_next_fire_times_fire_an_hourly_row_25_times_on_the_fall_back_day():
    fires = _fires_on("30 * * * *", "Europe/Berlin", date(2027, 10, 31))

    assert len(fires) == 25
    assert {b - a for a, b in itertools.pairwise(fires)} == {timedelta(hours=1)}


def test_next_fire_times_fire_a_fixed_hour_row_once_on_the_fall_back_day():
    assert _fires_on("30 2 * * *", "Europe/Berlin", date(2027, 10, 31)) == [
        utc(2027, 10, 31, 0, 30)  # the first 02:30 (CEST)
    ]
    every_two = _fires_on("0 */2 * * *", "Europe/Berlin", date(2027, 10, 31))
    assert len(every_two) == 12
    assert utc(2027, 10, 31, 0) in every_two  # 02:00 CEST, not 02:00 CET
    assert utc(2027, 10, 31, 1) not in every_two


def test_next_fire_times_follow_a_30_minute_fall_back():
    # Lord Howe 2027-04-04: local 01:30-01:59 happens at +11 then at +10:30.
    fires = _fires_on("30 * * * *", LORD_HOWE, date(2027, 4, 4))

    assert len(fires) == 25
    assert utc(2027, 4, 3, 14, 30) in fires  # 01:30 +11
    assert utc(2027, 4, 3, 15) in fires  # 01:30 +10:30
    quarter = _fires_on("*/15 * * * *", LORD_HOWE, date(2027, 4, 4))
    assert len(quarter) == 98  # 24.5 real hours
    assert {b - a for a, b in itertools.pairwise(quarter)} == {timedelta(minutes=15)}


def test_next_fire_times_shift_a_time_skipped_by_a_30_minute_spring_forward():
    # Lord Howe 2027-10-03: 02:00 (+10:30) -> 02:30 (+11); 02:15 does not exist and fires
    # at 02:45, as every skipped time fires after the gap.
    fires = _fires_on("15 * * * *", LORD_HOWE, date(2027, 10, 3))

    assert len(fires) == 24
    assert utc(2027, 10, 2, 15, 45) in fires  # 02:45 +11
