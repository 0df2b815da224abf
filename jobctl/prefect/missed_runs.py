"""Missed runs: due times of an active row that no attempt started within its misfire grace.

From each active row's cron and zone jobctl knows when it was due; a due time at least
the row's grace ago (``misfireGrace``, else ``JOBCTL_MISFIRE_GRACE_MS``) that no first
attempt started within that grace stands for is missed, whatever the cause: no worker
online, the pool or the deployment paused, the deployment deleted, the Prefect scheduler
not creating runs (after every update of a deployment it deletes the runs no worker has
taken and makes them again within seconds, or a minute later if its database restarted
meanwhile). A gap between two runs is missed too, not only the due times after the last run:
each first attempt stands for one due time, the latest one at or before its start that
no later attempt took (``_run_due_times``). Not missed: due times before the row was
created or last edited (a row disabled on purpose is not due, and enabling it again
starts afresh), due times inside a maintenance pause (``jobctl pause``: paused on purpose,
caught up once on resume), and with ``overlap = skip`` a run dropped because another
attempt was running then. Runs that jobctl's misfire policy skips later, when a worker is
back, were already missed when their grace ran out.

Each missed due time is recorded once in ``jobctl_missed_run`` (unique on schedule and
due time), so detectors that run twice or restart record and alert it once; it is
alerted through the row's notification block (``alertTo`` or ``JOBCTL_ALERT_TO``).
``tick`` does one round; the sync watcher calls it every minute.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from prefect.blocks.abstract import NotificationBlock
from sqlalchemy import Text, cast, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jobctl import alert_problems, errors, maintenance, registry, status_queries, validation
from jobctl.cron import ALIASES
from jobctl.maintenance import Maintenance
from jobctl.missed_run_model import MissedRun
from jobctl.models import JobSchedule, JobStatus, utcnow
from jobctl.prefect import alerts
from jobctl.prefect.gateway import PrefectGateway
from jobctl.records import Schedule
from jobctl.repository import Repository
from jobctl.settings import Settings
from jobctl.status_queries import RecentAttempt

logger = logging.getLogger("jobctl.prefect.missed_runs")

# At most this many due times of one row are recorded per round (a row every minute
# whose detector was down for a day would otherwise record 1,440 at once).
MAX_DUE_PER_ROW = 60
# Due times further back are not looked at: the first round after an upgrade, or after the
# watcher was down for long (the heartbeat reports that), does not flood the receivers.
LOOKBACK = timedelta(hours=1)
# A worker's clock may be a little behind the one the due times are reckoned by: an
# attempt that began this much before a due time may still be its run.
CLOCK_SKEW = timedelta(seconds=2)


@dataclass(frozen=True, kw_only=True)
class Missed:
    schedule_id: str
    job_name: str
    due_at: datetime
    reason: str


@dataclass(frozen=True, kw_only=True)
class Recorded:
    id: int
    schedule_id: str
    job_name: str
    due_at: datetime
    reason: str | None


def due_times(cron: str, zone: str, after: datetime, until: datetime) -> Iterator[datetime]:
    """Fire times of a normalised cron in ``zone`` with ``after < t <= until``, newest first."""
    local = until.astimezone(ZoneInfo(zone))
    fires = croniter(ALIASES.get(cron, cron), local + timedelta(microseconds=1))
    while True:
        due: datetime = fires.get_prev(datetime)
        if due <= after:
            return
        yield due


def _run_due_times(
    due: Sequence[datetime], starts: Sequence[datetime], grace: timedelta
) -> set[datetime]:
    """The due times some first attempt stands for: each start takes the latest due time
    not taken yet that it began within the grace of (a start at or after the next due
    time is that one's run; a run that waited past it, the previous one's). Latest starts
    first: with equal graces this takes as many due times as any assignment can."""
    ordered = sorted(due)
    taken: set[datetime] = set()
    for start in sorted(starts, reverse=True):
        index = bisect_right(ordered, start + CLOCK_SKEW) - 1
        while index >= 0 and ordered[index] in taken:
            index -= 1
        if index >= 0 and start - ordered[index] <= grace:
            taken.add(ordered[index])
    return taken


def _running_at(moment: datetime, attempts: Sequence[RecentAttempt], now: datetime) -> bool:
    """Some attempt was running at ``moment`` (one still PROCESSING runs until now)."""
    for attempt in attempts:
        running = attempt.status is JobStatus.PROCESSING
        end = attempt.end_at or (now if running else attempt.start_at)
        if attempt.start_at <= moment <= end:
            return True
    return False


def missed_of_row(
    row: Schedule,
    *,
    cron: str,
    zone: str,
    grace_s: float,
    attempts: Sequence[RecentAttempt],
    last_recorded: datetime | None,
    now: datetime,
    pauses: Sequence[Maintenance] = (),
) -> list[Missed]:
    """The due times of one active, valid row that are missed and not yet recorded
    (``attempts``: the row's attempts since ``LOOKBACK``; ``pauses``: maintenance pauses,
    whose due times are not missed), newest first."""
    grace = timedelta(seconds=grace_s)
    floors = [row.created_at, row.updated_at, now - LOOKBACK]
    after = max(moment for moment in floors if moment is not None)
    due = [
        moment
        for moment in due_times(cron, zone, after, now - grace)
        if not maintenance.covered(moment, pauses, now)
    ]
    starts = [a.start_at for a in attempts if (a.attempt or 1) == 1]
    run = _run_due_times(due, starts, grace)
    found: list[Missed] = []
    for moment in due:  # newest first
        if moment in run or (last_recorded is not None and moment <= last_recorded):
            continue
        if row.overlap == "skip" and _running_at(moment, attempts, now):
            continue  # dropped on purpose while another attempt ran
        if len(found) == MAX_DUE_PER_ROW:
            break
        found.append(
            Missed(
                schedule_id=row.id,
                job_name=str(row.job_name),
                due_at=moment,
                reason=f"no attempt started within {grace_s:g} s of {moment.isoformat()}",
            )
        )
    return found


def detect(
    rows: Sequence[Schedule],
    *,
    attempts: dict[str, list[RecentAttempt]],
    recorded: dict[str, datetime],
    known_jobs: Collection[str],
    default_zone: str,
    default_grace_ms: int,
    now: datetime,
    pauses: Sequence[Maintenance] = (),
    alert_target_problems: Mapping[str, str] = alert_problems.NONE,
    default_alert_to: str | None = None,
) -> list[Missed]:
    """Missed due times of every active valid row; a row that fails is logged and skipped."""
    found: list[Missed] = []
    for row in rows:
        try:
            good = validation.validated(row, known_jobs, row.id)
        except errors.InvalidSchedule:
            continue  # rejected rows are reported by the sync
        if not good.is_active:
            continue
        if alert_problems.reason_for(row.alert_to, alert_target_problems, default_alert_to):
            continue  # rejected by the sync too: its alert target has no block
        grace_ms = default_grace_ms if row.misfire_grace_ms is None else int(row.misfire_grace_ms)
        try:
            found.extend(
                missed_of_row(
                    row,
                    cron=str(good.cron),
                    zone=str(row.timezone or default_zone),
                    grace_s=grace_ms / 1000,
                    attempts=attempts.get(row.id, []),
                    last_recorded=recorded.get(row.id),
                    now=now,
                    pauses=pauses,
                )
            )
        except (ValueError, KeyError) as exc:  # a cron croniter cannot walk back
            logger.warning("schedule %s: missed runs not checked: %s", row.id, exc)
    return found


# -- the jobctl_missed_run table ---------------------------------------------------------


def record(repository: Repository, missed: Sequence[Missed], now: datetime) -> int:
    """Insert the missed due times; those already there are left alone (the unique key
    decides, so two detectors at once record each once). Returns how many were new."""
    new = 0
    with repository.session() as session:
        dialect = session.get_bind().dialect.name
        insert = (postgresql if dialect == "postgresql" else sqlite).insert
        for item in missed:
            statement = (
                insert(MissedRun)
                .values(
                    scheduleId=item.schedule_id,
                    jobName=item.job_name,
                    dueAt=item.due_at,
                    detectedAt=now,
                    reason=item.reason,
                )
                .on_conflict_do_nothing(index_elements=["scheduleId", "dueAt"])
                .returning(MissedRun.id)
            )
            new += session.execute(statement).first() is not None
    return new


def claim_unalerted(repository: Repository, now: datetime) -> list[Recorded]:
    """Mark every missed run not alerted yet as alerted and return them: a second detector
    finds nothing left to send (``release`` gives back those whose sending failed)."""
    with repository.session() as session:
        rows = session.execute(
            update(MissedRun)
            .where(MissedRun.alertedAt.is_(None))
            .values(alertedAt=now)
            .returning(
                MissedRun.id,
                MissedRun.scheduleId,
                MissedRun.jobName,
                MissedRun.dueAt,
                MissedRun.reason,
            )
        )
        return [
            Recorded(id=r[0], schedule_id=r[1], job_name=r[2], due_at=r[3], reason=r[4])
            for r in rows
        ]


def release(repository: Repository, ids: Collection[int]) -> None:
    if not ids:
        return
    with repository.session() as session:
        session.execute(update(MissedRun).where(MissedRun.id.in_(ids)).values(alertedAt=None))


def _descriptions(repository: Repository, ids: Collection[str]) -> dict[str, str | None]:
    schedule_id = cast(JobSchedule.id, Text)
    statement = select(schedule_id, JobSchedule.description).where(schedule_id.in_(list(ids)))
    with repository.session() as session:
        return {row[0]: row[1] for row in session.execute(statement)}


# -- one round ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TickReport:
    detected: int
    recorded: int
    alerted: int
    failed: int


def message(item: Recorded, description: str | None) -> tuple[str, str]:
    subject = f"jobctl: {item.job_name} did not run"
    body = (
        f"Job {item.job_name} was due at {item.due_at.isoformat()} and did not run.\n"
        f"Schedule: {item.schedule_id} {description or ''}\n"
        f"Why: {item.reason or 'no attempt started in time'}\n"
        "Check that a worker polls the pool and that the pool and the deployment are not "
        "paused: jobctl status --failing"
    )
    return subject, body


async def send_alerts(
    settings: Settings, repository: Repository, gateway: PrefectGateway, now: datetime
) -> tuple[int, int]:
    """Send every missed run not alerted yet through its row's block: (sent, failed).
    A missed run whose row names no block is marked alerted without sending."""
    claimed = claim_unalerted(repository, now)
    if not claimed:
        return 0, 0
    targets = alerts.alert_targets(repository, settings.alert_to)
    descriptions = _descriptions(repository, {item.schedule_id for item in claimed})
    blocks: dict[str, NotificationBlock | None] = {}
    sent, failed_ids = 0, []
    for item in claimed:
        slug = targets.get(item.schedule_id)
        if slug is None:
            continue
        if slug not in blocks:
            try:
                blocks[slug] = await gateway.load_notification_block(slug)
            except ValueError as exc:
                logger.warning("alertTo %r cannot be loaded: %s", slug, exc)
                blocks[slug] = None
        block = blocks[slug]
        if block is None:
            continue
        subject, body = message(item, descriptions.get(item.schedule_id))
        try:
            await block.anotify(body, subject)  # type: ignore[attr-defined]
        except Exception as exc:  # any delivery failure: sent again next round
            logger.warning("missed-run alert of %s not sent: %s", item.schedule_id, exc)
            failed_ids.append(item.id)
            continue
        sent += 1
    release(repository, failed_ids)
    return sent, len(failed_ids)


async def tick(
    settings: Settings,
    repository: Repository,
    gateway: PrefectGateway,
    now: datetime | None = None,
) -> TickReport:
    """Detect, record and alert missed runs once."""
    now = now or utcnow()
    missed = detect(
        repository.list_schedules(),
        attempts=status_queries.recent_attempts(repository, since=now - LOOKBACK),
        recorded=status_queries.latest_missed(repository),
        known_jobs=registry.job_names(),
        default_zone=settings.timezone,
        default_grace_ms=settings.misfire_grace_ms,
        now=now,
        pauses=repository.list_maintenance(ended_after=now - LOOKBACK),
        alert_target_problems=alert_problems.read(repository),
        default_alert_to=settings.alert_to,
    )
    new = record(repository, missed, now)
    sent, failed = await send_alerts(settings, repository, gateway, now)
    return TickReport(detected=len(missed), recorded=new, alerted=sent, failed=failed)
