"""The fire times a backfill runs, and the marks it leaves on each run.

Pure: callers pass ``now``. The fire times are exactly the instants the row's forward
schedule runs (``jobctl.cron.next_fire_times``: Prefect's own schedules, built as the sync
builds the deployment's, DST repeats included), so a backfill of a night fires when the
schedule would have: a spring-forward night of ``0 * * * *`` in Europe/Berlin has 23, a
fall-back night 25.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from jobctl import cron
from jobctl.errors import BackfillRefused

DEFAULT_MAX_RUNS = 1_000
# No backfill reaches further back: time zones' rules before it are local mean times.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
# How many fire times one call of Prefect's schedule computes.
_BATCH = 256
ORIGIN_PREFIX = "backfill "
# A tag on each run a backfill creates, for Prefect's UI and filters.
TAG_PREFIX = "backfill:"


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fire_times(
    expression: str,
    timezone: str,
    start: datetime,
    end: datetime,
    *,
    max_runs: int = DEFAULT_MAX_RUNS,
    now: datetime,
) -> list[datetime]:
    """The fire times ``t`` of a normalised cron in ``timezone`` with ``start <= t < end``,
    oldest first, as aware times in ``timezone``.

    Raises ``BackfillRefused`` for an empty or reversed range, a range that ends after
    ``now`` (a backfill runs what is past) or starts before 1970, or one with more than
    ``max_runs`` fire times.
    """
    if start.tzinfo is None or end.tzinfo is None or now.tzinfo is None:
        raise ValueError("start, end and now must be timezone-aware")
    if max_runs < 1:
        raise BackfillRefused(f"the maximum number of runs must be at least 1, not {max_runs}")
    if start >= end:
        raise BackfillRefused(
            f"the range is empty: from {utc_text(start)} is not before to {utc_text(end)}"
        )
    if start < EARLIEST:
        raise BackfillRefused(f"the range starts at {utc_text(start)}, before {utc_text(EARLIEST)}")
    if end > now:
        raise BackfillRefused(
            f"the range ends at {utc_text(end)}, after now ({utc_text(now)}): a backfill "
            "runs past fire times only; the schedule runs the later ones"
        )
    found: list[datetime] = []
    cursor = start - _JUST_BEFORE
    while True:
        batch = cron.next_fire_times(expression, timezone, cursor, count=_BATCH)
        for fire in batch:
            if fire >= end:
                return found
            if len(found) == max_runs:
                raise BackfillRefused(
                    f"the range {utc_text(start)} to {utc_text(end)} holds more than "
                    f"{max_runs:,} fire times of {expression!r} in {timezone}: narrow it, or "
                    "raise the limit (--max-runs, maxRuns)"
                )
            found.append(fire)
        if len(batch) < _BATCH:
            return found  # the cron fires no more
        cursor = batch[-1]


_JUST_BEFORE = datetime.resolution


def origin(start: datetime, end: datetime) -> str:
    """What a backfill's runs record as their origin: ``backfill <from>/<to>`` (UTC)."""
    return f"{ORIGIN_PREFIX}{utc_text(start)}/{utc_text(end)}"


def tag(start: datetime, end: datetime) -> str:
    return f"{TAG_PREFIX}{utc_text(start)}/{utc_text(end)}"


def origin_of_tags(tags: Iterable[str]) -> str | None:
    """The origin a run's backfill tag names, or None for a run no backfill created."""
    for item in tags:
        if item.startswith(TAG_PREFIX):
            return ORIGIN_PREFIX + item.removeprefix(TAG_PREFIX)
    return None


def idempotency_key(schedule_id: str, fire_time: datetime, try_number: int = 1) -> str:
    """One run per (row, fire time), whichever backfill asks for it and how often; a
    second try (``try_number`` 2, 3...) of a run Prefect refused has a key of its own."""
    key = f"jobctl-backfill {schedule_id} {utc_text(fire_time)}"
    return key if try_number == 1 else f"{key} #{try_number}"
