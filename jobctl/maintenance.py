"""The maintenance pause: one flag, kept apart from every row's ``isActive``.

While a pause is on, the sync keeps every managed deployment paused (rows edited meanwhile
are still synced, paused); when it ends, the rows whose ``isActive`` is true resume and
the others stay paused, exactly as before. A pause ends by ``resume`` or, when it was set
with ``until``, by itself at that time (the sync watcher wakes up for it).

Each pause is a row of ``jobctl_maintenance`` (migration 0005) that stays after it ends:
the missed-run detector skips fire times inside past pauses, and a pause that ended is
caught up once (``deployments.catch_up``). Pure functions here take ``now``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from jobctl import errors
from jobctl.cron import ALIASES

UNTIL_ENDED_BY = "until"  # who ended a pause that ended at its ``until``
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}


@dataclass(frozen=True, kw_only=True)
class Maintenance:
    """One maintenance pause, on or ended."""

    id: int
    reason: str
    set_by: str
    started_at: datetime
    until: datetime | None
    ended_at: datetime | None
    ended_by: str | None
    caught_up_at: datetime | None

    def is_on(self, now: datetime) -> bool:
        return self.ended_at is None and (self.until is None or now < self.until)

    def end(self, now: datetime) -> datetime | None:
        """When it ended (at ``now``): its end, else its ``until`` once passed, else None."""
        if self.ended_at is not None:
            return self.ended_at
        if self.until is not None and self.until <= now:
            return self.until
        return None

    def covers(self, moment: datetime, now: datetime) -> bool:
        """Whether ``moment`` fell inside this pause (up to ``now`` while it is on)."""
        end = self.end(now) or now
        return self.started_at <= moment <= end

    def describe(self) -> str:
        """One line for `jobctl status`, `jobctl up` and logs, while it is on."""
        text = (
            f"maintenance pause on since {self.started_at:%Y-%m-%d %H:%M:%S} UTC "
            f"by {self.set_by}: {self.reason}"
        )
        if self.until is not None:
            text += f" (until {self.until:%Y-%m-%d %H:%M:%S} UTC)"
        return text


def covered(moment: datetime, pauses: Iterable[Maintenance], now: datetime) -> bool:
    """Whether ``moment`` fell inside any of ``pauses``."""
    return any(pause.covers(moment, now) for pause in pauses)


def parse_until(text: str, now: datetime) -> datetime:
    """``--until``: an ISO-8601 time (a time without zone is UTC) or a duration from ``now``
    (``90s``, ``15m``, ``2h``, ``1d``). It must lie in the future."""
    match = _RELATIVE.match(text)
    if match is not None:
        try:
            until = now + timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])
        except OverflowError:
            raise errors.InvalidInput(f"until {errors.shown(text)} is too far ahead") from None
    else:
        try:
            until = datetime.fromisoformat(text.strip())
        except ValueError:
            raise errors.InvalidInput(
                f"until {errors.shown(text)} is neither an ISO-8601 time "
                "(2026-12-01T12:00:00Z) nor a duration (90s, 15m, 2h, 1d)"
            ) from None
    return checked_until(until, now)


def checked_until(until: datetime, now: datetime) -> datetime:
    """``until`` in UTC (UTC when it names no zone), refused unless after ``now``."""
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    try:
        until = until.astimezone(UTC)
    except OverflowError:  # year 9999 with a negative offset, say
        raise errors.InvalidInput(f"until {until.isoformat()} is out of range") from None
    if until <= now:
        raise errors.InvalidInput(
            f"until {until.isoformat()} has already passed (now {now.isoformat()})"
        )
    return until


def checked_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise errors.InvalidInput("a maintenance pause needs a reason")
    if "\x00" in reason:
        raise errors.InvalidInput("the reason holds a NUL character")
    return reason


def latest_fire_between(cron: str, zone: str, after: datetime, until: datetime) -> datetime | None:
    """The last fire time of a normalised cron in ``zone`` with ``after < t <= until``."""
    if until <= after:
        return None
    local = until.astimezone(ZoneInfo(zone))
    fires = croniter(ALIASES.get(cron, cron), local + timedelta(microseconds=1))
    previous: datetime = fires.get_prev(datetime)
    return previous.astimezone(UTC) if previous > after else None
