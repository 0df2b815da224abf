"""Cron expressions: normalise them to what Prefect understands, and list fire times.

Pure functions: callers pass ``at``; nothing here reads the clock.

DST (docs/schedules.md states the policy): Prefect evaluates a cron on local wall time
and takes each wall time once, at its first occurrence; a time skipped by spring-forward
fires after the gap. A row whose hour field covers every hour must also fire through the
second pass of a repeated (fall-back) hour: ``repeat_schedules`` gives the extra Prefect
schedules (explicit UTC instants) that cover it for the next fall-backs.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

from croniter import croniter
from pydantic import ValidationError

from jobctl.errors import SHOWN_CHARS, InvalidCron, shown

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# A time zone prefix, as cronie takes it (``CRON_TZ=Asia/Taipei 0 9 * * *``): a row has a
# column for the zone.
TIME_ZONE_PREFIX = re.compile(r"(?:CRON_)?TZ=(?P<zone>.*)", re.IGNORECASE)
# Where the check that an expression fires at all starts: fixed, nothing here reads the clock.
FIRST_FIRE_SEARCH_START = datetime(2000, 1, 1, tzinfo=UTC)
# How many fall-backs ahead a row carries the schedules of: two always reach a year ahead,
# further than Prefect's scheduler plans (100 days unless configured otherwise).
UPCOMING_FALL_BACKS = 2
# How far ahead fall-backs are looked for: zones that dropped DST have none.
FALL_BACK_SEARCH_YEARS = 3
REPEAT_SLUG_PREFIX = "dst-repeat-"
_SLUG_TIME = "%Y%m%dT%H%MZ"


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
    zone_prefix = TIME_ZONE_PREFIX.match(fields[0])
    if zone_prefix:
        raise InvalidCron(
            f"{shown(stripped)} starts with a time zone: set the row's timezone to "
            f"{shown(zone_prefix.group('zone'))} and leave it out of the cron"
        )
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

    Computed by Prefect's own schedules from the schedules the sync gives the row's
    deployment (its cron, or its ``utc_equivalent``, and the ``repeat_schedules`` of the
    next fall-backs), so that
    what we show is what Prefect runs, on DST days too: a time skipped by spring-forward
    fires after the gap; a repeated time fires at its first occurrence, and at its second
    too when the hour field covers every hour.
    """
    if at.tzinfo is None:
        raise ValueError("`at` must be timezone-aware")
    from prefect.server.schemas.schedules import CronSchedule, RRuleSchedule

    five = normalize_cron(expression)
    utc_cron = utc_equivalent(five, timezone, at)
    if utc_cron is not None:
        schedule = CronSchedule(cron=utc_cron, timezone="UTC")
    else:
        schedule = CronSchedule(cron=ALIASES.get(five, five), timezone=timezone)
    # get_dates() is a coroutine around this generator; callers here are synchronous.
    after = at + timedelta(microseconds=1)  # strictly after ``at``
    dates = list(schedule._get_dates_generator(n=count, start=after))
    for repeat in repeat_schedules(five, timezone, at):
        extra = RRuleSchedule(rrule=repeat.rrule, timezone="UTC")
        dates += extra._get_dates_generator(n=count, start=after)
    zone = ZoneInfo(timezone)
    # Sorted as instants: aware times of one zone compare as wall times, fold ignored.
    # Plain datetimes: Prefect's are pendulum's on Python < 3.13.
    instants = sorted(datetime.fromtimestamp(date.timestamp(), UTC) for date in dates)[:count]
    return [instant.astimezone(zone) for instant in instants]


# -- the second pass of repeated hours -----------------------------------------------------


@dataclass(frozen=True)
class FallBack:
    """Clocks set back at ``at`` (UTC) by ``shift``: the wall times of the real span
    ``[at - shift, at)`` come again during ``[at, at + shift)``."""

    at: datetime
    shift: timedelta

    @property
    def end(self) -> datetime:
        return self.at + self.shift


@dataclass(frozen=True)
class RepeatSchedule:
    """An extra Prefect schedule of one row: the instants of one fall-back's second pass
    that the row's cron names, as an RRule of explicit UTC dates (it never fires again)."""

    slug: str
    rrule: str
    instants: tuple[datetime, ...]


@functools.lru_cache(maxsize=4096)  # called for every row on every sync
def covers_every_hour(expression: str) -> bool:
    """Whether the hour field of a normalised cron names every hour (``*``, ``*/1``,
    ``0-23``): such a row fires through both passes of a repeated hour."""
    five = ALIASES.get(expression, expression)
    return bool(croniter(five).expanded[1] == ["*"])  # croniter writes 0-23 as "*" too


@functools.lru_cache(maxsize=1024)
def fall_backs_in_year(timezone: str, year: int) -> tuple[FallBack, ...]:
    """The instants of ``year`` (UTC) at which ``timezone`` sets its clocks back."""
    zone = ZoneInfo(timezone)
    found: list[FallBack] = []
    step = timedelta(days=1)  # no zone changes its offset twice in a day
    at = datetime(year, 1, 1, tzinfo=UTC)
    stop = datetime(year + 1, 1, 1, tzinfo=UTC)
    offset = _offset(at, zone)
    while at < stop:
        following = at + step
        next_offset = _offset(following, zone)
        if next_offset < offset:
            found.append(FallBack(_transition(at, following, zone), offset - next_offset))
        at, offset = following, next_offset
    return tuple(found)


def _offset(instant: datetime, zone: ZoneInfo) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _transition(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The first second of ``after``'s offset, found between ``before`` and ``after``."""
    low, high = before, after  # offset(low) differs from offset(high)
    wanted = _offset(after, zone)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if _offset(middle, zone) == wanted:
            high = middle
        else:
            low = middle
    return high


def upcoming_fall_backs(timezone: str, now: datetime) -> tuple[FallBack, ...]:
    """The next ``UPCOMING_FALL_BACKS`` fall-backs whose second pass has not ended at
    ``now``. The answer changes only when a second pass ends, not as ``now`` moves."""
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    start = now.astimezone(UTC)
    found: list[FallBack] = []
    for year in range(start.year, start.year + FALL_BACK_SEARCH_YEARS + 1):
        found += [f for f in fall_backs_in_year(timezone, year) if f.end > start]
        if len(found) >= UPCOMING_FALL_BACKS:
            break
    return tuple(found[:UPCOMING_FALL_BACKS])


def utc_equivalent(expression: str, timezone: str, now: datetime) -> str | None:
    """The cron that, evaluated in UTC, names exactly the instants the policy gives a row of
    every hour with no day restriction (``*/15 * * * *``), in a DST zone whose offsets all
    share their minutes (whole hours; or all half past, as Adelaide's or St John's): the
    local minute is then the UTC minute shifted by a constant, through every DST change.

    One dense schedule instead of the zone's cron and repeat schedules: Prefect's scheduler
    revisits on every loop a deployment with a schedule of few runs (measured: about 19 ms
    each on this machine), which repeat schedules always are. None when not equivalent
    (a fixed hour, a day restriction, Lord Howe's 30-minute shift) or not needed (no DST).
    """
    if not covers_every_hour(expression):
        return None
    fall_backs = upcoming_fall_backs(timezone, now)
    if not fall_backs:
        return None
    zone = ZoneInfo(timezone)
    offsets = {_offset(now.astimezone(UTC), zone)}
    for fall_back in fall_backs:
        after = _offset(fall_back.at, zone)
        offsets |= {after, after + fall_back.shift}
    shifts = {int(offset.total_seconds()) % 3600 for offset in offsets}
    if len(shifts) != 1 or shifts != {s - s % 60 for s in shifts}:
        return None
    return _shifted_to_utc(expression, shifts.pop() // 60)


@functools.lru_cache(maxsize=4096)  # called for every row on every sync
def _shifted_to_utc(expression: str, offset_minutes: int) -> str | None:
    """``expression`` in UTC for a zone ``offset_minutes`` (mod 60) ahead of it, if it has
    no day restriction (its local date would be needed); None otherwise."""
    fields = croniter(ALIASES.get(expression, expression)).expanded
    if any(field != ["*"] for field in fields[2:5]):
        return None
    minutes = fields[0]
    if minutes == ["*"] or offset_minutes == 0:
        return ALIASES.get(expression, expression)
    utc_minutes = sorted((int(m) - offset_minutes) % 60 for m in minutes)
    return " ".join([",".join(map(str, utc_minutes)), "*", "*", "*", "*"])


def repeat_schedules(expression: str, timezone: str, now: datetime) -> tuple[RepeatSchedule, ...]:
    """The extra schedules that let a row whose hour field covers every hour fire at the
    second pass of the next repeated hours of ``timezone``; none for other rows, nor for
    rows that ``utc_equivalent`` maps to one UTC schedule.

    ``expression`` is a normalised cron. Its instants in a second pass never coincide with
    the main schedule's (that one fires at first occurrences), so no instant runs twice.
    """
    if not covers_every_hour(expression) or utc_equivalent(expression, timezone, now):
        return ()
    return tuple(
        schedule
        for fall_back in upcoming_fall_backs(timezone, now)
        if (schedule := _repeat_schedule(expression, timezone, fall_back)) is not None
    )


@functools.lru_cache(maxsize=4096)  # called for every row on every sync
def _repeat_schedule(expression: str, timezone: str, fall_back: FallBack) -> RepeatSchedule | None:
    five = ALIASES.get(expression, expression)
    zone = ZoneInfo(timezone)
    # The wall time at which the second pass starts, and where it ends.
    wall_start = fall_back.at.astimezone(zone).replace(tzinfo=None)
    wall_end = wall_start + fall_back.shift
    walls = croniter(five, wall_start - timedelta(seconds=1))  # day_or=True, as Prefect's
    instants: list[datetime] = []
    while (wall := walls.get_next(datetime)) < wall_end:
        instants.append(fall_back.at + (wall - wall_start))
    if not instants:
        return None
    # Explicit dates: at most one a minute through a shift of an hour or two, far below
    # the 6,500 characters Prefect takes in an RRule.
    rrule = "RDATE:" + ",".join(i.strftime("%Y%m%dT%H%M%SZ") for i in instants)
    digest = hashlib.sha256(f"{timezone} {rrule}".encode()).hexdigest()[:8]
    slug = f"{REPEAT_SLUG_PREFIX}{fall_back.end.strftime(_SLUG_TIME)}-{digest}"
    return RepeatSchedule(slug=slug, rrule=rrule, instants=tuple(instants))


def repeat_slug_ends(slug: str) -> datetime | None:
    """When the schedule named ``slug`` stops firing, or None if it is not one of ours."""
    if not slug.startswith(REPEAT_SLUG_PREFIX):
        return None
    stamp = slug.removeprefix(REPEAT_SLUG_PREFIX).split("-", 1)[0]
    try:
        return datetime.strptime(stamp, _SLUG_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None
