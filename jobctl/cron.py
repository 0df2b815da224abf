"""Cron expressions: normalise them to what Prefect understands, and list fire times.

Pure functions: callers pass ``at``; nothing here reads the clock.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

from croniter import croniter
from pydantic import ValidationError

from jobctl.errors import SHOWN_CHARS, shown

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Where the check that an expression fires at all starts: fixed, nothing here reads the clock.
FIRST_FIRE_SEARCH_START = datetime(2000, 1, 1, tzinfo=UTC)


class InvalidCron(ValueError):
    pass


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_time_zone(name: str) -> bool:
    """Whether ``name`` is an IANA zone, from the list Prefect checks against.

    ``ZoneInfo()`` alone accepts odd paths, and fails on "Europe" with IsADirectoryError.
    """
    return name in _zones()


@functools.lru_cache(maxsize=4096)  # pure, and called for every row on every sync
def normalize_cron(expression: str) -> str:
    """Return the five-field form Prefect should get, or raise ``InvalidCron`` saying why.

    A six-field expression is read as seconds-first (NestJS, BullMQ); it is accepted only
    when its seconds field is ``0``, because Prefect schedules to the minute (and would read
    a sixth field as trailing seconds, silently meaning something else).
    """
    stripped = " ".join(expression.split())
    if not stripped:
        raise InvalidCron("empty cron expression")
    if stripped.startswith("@"):
        if stripped.lower() not in ALIASES:
            raise InvalidCron(
                f"unknown alias {shown(stripped)} (use one of {', '.join(sorted(ALIASES))})"
            )
        return stripped.lower()
    fields = stripped.split(" ")
    if len(fields) == 6:
        seconds, *rest = fields
        if seconds != "0":
            raise InvalidCron(
                f"{shown(stripped)} runs at second {shown(seconds)}: sub-minute schedules are "
                "not supported (a six-field cron is seconds-first and needs 0 seconds)"
            )
        fields = rest
    elif len(fields) != 5:
        raise InvalidCron(
            f"{shown(stripped)} has {len(fields)} fields; expected 5 (or 6, seconds first)"
        )
    five = " ".join(fields)
    if not croniter.is_valid(five):
        raise InvalidCron(f"{shown(five)} is not a valid cron expression: {_reason(five)}")
    _check_prefect_accepts(five)
    return five


def _check_prefect_accepts(five: str) -> None:
    """Prefect refuses some of what croniter takes (``R``, ``1W``), and a date Prefect's
    scheduler never finds (``0 0 30 2 *``; ``0 0 30 FEB MON``, which croniter alone would
    read as every Monday of February) would leave the deployment without runs: refuse both."""
    # Imported here: importing Prefect's schedules (its server too) costs every command
    # that only reads the tables a second or more.
    from prefect.client.schemas.schedules import CronSchedule as ClientCronSchedule
    from prefect.server.schemas.schedules import CronSchedule

    try:
        ClientCronSchedule(cron=five, timezone="UTC")
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise InvalidCron(f"{shown(five)} is refused by Prefect: {reason[:200]}") from None
    schedule = CronSchedule(cron=five, timezone="UTC")
    try:  # computed as Prefect's scheduler computes it
        fires = list(schedule._get_dates_generator(n=1, start=FIRST_FIRE_SEARCH_START))
    except ValueError:  # the croniter that Prefect vendors: "failed to find next date"
        fires = []
    if not fires:
        raise InvalidCron(f"{shown(five)} never fires (no such date)")


def _reason(expression: str) -> str:
    try:
        croniter(expression)
    except (ValueError, KeyError) as exc:
        reason = str(exc) or type(exc).__name__
        return reason if len(reason) <= 2 * SHOWN_CHARS else reason[: 2 * SHOWN_CHARS] + "…"
    return "rejected by croniter"


def next_fire_times(expression: str, timezone: str, at: datetime, count: int = 3) -> list[datetime]:
    """The next ``count`` fire times after ``at``, as aware datetimes in ``timezone``.

    Computed by Prefect's own cron schedule, so that what we show is what Prefect runs,
    on DST days too (a time skipped by spring-forward fires after the gap; a repeated
    time fires once, at its first occurrence).
    """
    if at.tzinfo is None:
        raise ValueError("`at` must be timezone-aware")
    from prefect.server.schemas.schedules import CronSchedule

    five = normalize_cron(expression)
    schedule = CronSchedule(cron=ALIASES.get(five, five), timezone=timezone)
    # get_dates() is a coroutine around this generator; callers here are synchronous.
    after = at + timedelta(microseconds=1)  # strictly after ``at``
    dates = sorted(schedule._get_dates_generator(n=count, start=after))
    zone = ZoneInfo(timezone)
    return [date.astimezone(zone) for date in dates]
