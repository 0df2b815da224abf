"""`jobctl status`: one line per schedule — its state, its last run, its next fire time.

The state is ``rejected`` for a row the sync refuses (with the validation's reason, or why
the last sync found no notification block for its alert target), ``paused`` for
``isActive`` false, ``missed`` when its last due time passed its misfire grace with no
attempt started since, else ``active``. Pure functions take ``now``.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from jobctl import alert_problems, errors, maintenance, registry, status_queries, validation
from jobctl.cron import ALIASES, next_fire_times
from jobctl.maintenance import Maintenance
from jobctl.models import JobStatus, utcnow
from jobctl.records import Schedule
from jobctl.repository import Repository
from jobctl.settings import Settings
from jobctl.status_queries import LatestAttempt

ACTIVE = "active"
PAUSED = "paused"
REJECTED = "rejected"
MISSED = "missed"
# How far back `status` looks for maintenance pauses that explain a due time with no run.
MAINTENANCE_LOOKBACK = timedelta(days=2)


@dataclass(frozen=True, kw_only=True)
class ScheduleStatus:
    schedule_id: str
    job_name: str
    cron: str
    timezone: str
    description: str | None
    state: str
    reason: str | None  # why rejected, or which due time was missed
    last: LatestAttempt | None
    last_success_at: datetime | None
    next_fire_at: datetime | None
    missed_due_at: datetime | None

    @property
    def failing(self) -> bool:
        """The last run failed, or a due run did not start."""
        return self.state == MISSED or (
            self.last is not None and self.last.status is JobStatus.FAILED
        )


@functools.lru_cache(maxsize=1_024)
def previous_fire(cron: str, zone: str, at: datetime) -> datetime:
    """The last fire time of a (normalised) cron at or before ``at``, in ``zone``."""
    local = at.astimezone(ZoneInfo(zone))
    fires = croniter(ALIASES.get(cron, cron), local + timedelta(microseconds=1))
    previous: datetime = fires.get_prev(datetime)
    return previous


# A worker starts a run it took ahead of time a moment before its due time (seen: 0.4 s).
EARLY_START_S = 30.0


def _early_start_allowance(cron: str, zone: str, due: datetime) -> timedelta:
    """How long before ``due`` an attempt may start and still be ``due``'s: up to
    ``EARLY_START_S``, never half the way back to the fire time before (whose run it is)."""
    before = previous_fire(cron, zone, due - timedelta(seconds=1))
    return min(timedelta(seconds=EARLY_START_S), (due - before) / 2)


def missed_due_time(
    row: Schedule,
    *,
    cron: str,
    zone: str,
    grace_s: float,
    last_start: datetime | None,
    last_running: bool,
    now: datetime,
    pauses: Sequence[Maintenance] = (),
) -> datetime | None:
    """The due time this active row missed, if any: the last fire time at least
    ``grace_s`` ago, when no attempt started since it (or just before it: a worker may
    start a run it took ahead a moment early).

    Not missed: a row created or edited after that time (it was not due then: a row
    enabled again was paused on purpose), a time inside a maintenance pause (``pauses``),
    and with ``overlap = skip`` a run still going (the due run was dropped on purpose).
    """
    due = previous_fire(cron, zone, now - timedelta(seconds=grace_s))
    if maintenance.covered(due, pauses, now):
        return None
    for changed in (row.created_at, row.updated_at):
        if changed is not None and changed >= due:
            return None
    if last_start is not None and last_start >= due - _early_start_allowance(cron, zone, due):
        return None
    if last_running and row.overlap == "skip":
        return None
    return due


def next_run_after_pauses(
    cron: str, zone: str, next_fire: datetime, pauses: Sequence[Maintenance], now: datetime
) -> datetime | None:
    """When an active row runs next, given the maintenance pause on at ``now``: unknown
    (None) while one without ``until`` is on; at its ``until`` when the cron falls due
    during it (its one catch-up run); else ``next_fire``."""
    on = [pause for pause in pauses if pause.is_on(now)]
    if not on:
        return next_fire
    if any(pause.until is None for pause in on):
        return None
    until = max(pause.until for pause in on if pause.until is not None)
    started = min(pause.started_at for pause in on)
    if maintenance.latest_fire_between(cron, zone, started, until) is not None:
        return until
    return next_fire


def statuses(
    rows: Sequence[Schedule],
    *,
    latest: Mapping[str, LatestAttempt],
    successes: Mapping[str, datetime],
    known_jobs: Collection[str],
    default_zone: str,
    default_grace_ms: int,
    now: datetime,
    pauses: Sequence[Maintenance] = (),
    alert_target_problems: Mapping[str, str] = alert_problems.NONE,
    default_alert_to: str | None = None,
) -> list[ScheduleStatus]:
    """The status of every row; a row whose cron cannot be evaluated is reported, not fatal.
    ``alert_target_problems``: the alert targets the last sync found no block for (its
    rows are rejected)."""
    found: list[ScheduleStatus] = []
    # Rows share crons and zones: each fire time is computed once per (cron, zone).
    next_fires: dict[tuple[str, str], datetime] = {}
    for row in rows:
        zone = str(row.timezone or default_zone)
        last = latest.get(row.id)
        state, reason, next_at, missed_at = ACTIVE, None, None, None
        try:
            good = validation.validated(row, known_jobs, row.id)
        except errors.InvalidSchedule as exc:
            state, reason = REJECTED, "; ".join(str(p) for p in exc.problems)
        else:
            cron = str(good.cron)
            try:
                if (cron, zone) not in next_fires:
                    next_fires[(cron, zone)] = next_fire_times(cron, zone, now, count=1)[0]
                next_at = next_fires[(cron, zone)]
            except (ValueError, IndexError) as exc:
                state, reason = REJECTED, f"cron cannot be evaluated: {exc}"
            alert_problem = alert_problems.reason_for(
                row.alert_to, alert_target_problems, default_alert_to
            )
            if state == ACTIVE and alert_problem is not None:
                state, reason, next_at = REJECTED, alert_problem, None
            if state == ACTIVE and not good.is_active:
                state = PAUSED
                next_at = None
            elif state == ACTIVE and next_at is not None:
                next_at = next_run_after_pauses(cron, zone, next_at, pauses, now)
            if state == ACTIVE:
                grace_ms = row.misfire_grace_ms
                grace_s = (default_grace_ms if grace_ms is None else int(grace_ms)) / 1000
                missed_at = missed_due_time(
                    row,
                    cron=cron,
                    zone=zone,
                    grace_s=grace_s,
                    last_start=None if last is None else last.start_at,
                    last_running=last is not None and last.status is JobStatus.PROCESSING,
                    now=now,
                    pauses=pauses,
                )
                if missed_at is not None:
                    state = MISSED
                    due = missed_at.strftime("%Y-%m-%d %H:%M %Z")
                    reason = f"due {due}, no attempt started"
        found.append(
            ScheduleStatus(
                schedule_id=row.id,
                job_name=str(row.job_name),
                cron=str(row.cron),
                timezone=zone,
                description=None if row.description is None else str(row.description),
                state=state,
                reason=reason,
                last=last,
                last_success_at=successes.get(row.id),
                next_fire_at=next_at,
                missed_due_at=missed_at,
            )
        )
    return found


def read_status(
    settings: Settings,
    repository: Repository,
    *,
    failing_only: bool = False,
    now: datetime | None = None,
) -> list[ScheduleStatus]:
    now = now or utcnow()
    lines = statuses(
        repository.list_schedules(),
        latest=status_queries.latest_attempts(repository),
        successes=status_queries.last_successes(repository),
        known_jobs=registry.job_names(),
        default_zone=settings.timezone,
        default_grace_ms=settings.misfire_grace_ms,
        now=now,
        pauses=repository.list_maintenance(ended_after=now - MAINTENANCE_LOOKBACK),
        alert_target_problems=alert_problems.read(repository),
        default_alert_to=settings.alert_to,
    )
    return [line for line in lines if line.failing] if failing_only else lines
