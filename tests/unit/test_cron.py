from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

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
