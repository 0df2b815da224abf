"""The one module that runs SQL against the JobSchedule and JobHistory tables."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Text,
    cast,
    delete,
    func,
    insert,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.sqltypes import NullType

from jobctl import errors
from jobctl.audit_model import AuditActor
from jobctl.db import session_factory
from jobctl.db_errors import translate_errors
from jobctl.fields import COLUMN_OF_FIELD
from jobctl.maintenance import UNTIL_ENDED_BY, Maintenance
from jobctl.maintenance_model import MaintenancePause
from jobctl.models import JobctlState, JobHistory, JobSchedule, JobStatus, as_utc, utcnow
from jobctl.records import (
    SPEC_FIELDS,
    Attempt,
    HistoryFilter,
    InvalidJson,
    Schedule,
    ScheduleSpec,
)
from jobctl.run_origin_model import RunOrigin

SCHEDULE_VERSION_KEY = "schedule_version"
NOTIFY_CHANNEL = "jobctl_schedule"
PURGE_BATCH_SIZE = 5_000
# Who a repository's writes to JobSchedule are attributed to in the audit, unless bound
# to a face's caller (``acting_as``).
DEFAULT_ACTOR = "jobctl"


def _can_be_stored(*texts: str | None) -> bool:
    """False when a text holds NUL, which PostgreSQL text columns cannot hold: no row can
    match it, and the driver would refuse to even send it."""
    return not any(text is not None and "\x00" in text for text in texts)


def _decode_param(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return InvalidJson(raw)
    except RecursionError:  # valid JSON, but deeper than Python decodes
        return InvalidJson(raw, reason="JSON nested too deeply")


def _decode_active(raw: Any) -> Any:
    """``isActive`` as stored: SQLite keeps 0/1, and plain SQL can put any value there.

    Read raw, not through the Boolean type (which makes ``'false'`` true): a value that is
    not a boolean stays as it is, for validation to reject.
    """
    if not isinstance(raw, bool) and isinstance(raw, int | float) and raw in (0, 1):
        return bool(raw)
    return raw


def _decode_timestamp(raw: Any) -> datetime | None:
    """``createdAt`` / ``updatedAt`` as stored, in UTC. On SQLite plain SQL can put any
    text there: a value that is no timestamp reads as unknown (None). It says when the
    row was written, nothing of when it runs, so the row is not rejected for it."""
    if isinstance(raw, str):
        try:
            raw = datetime.fromisoformat(raw)
        except ValueError:
            return None
    if not isinstance(raw, datetime):
        return None
    return as_utc(raw)


def _schedule_from_row(row: Any) -> Schedule:
    values = {name: getattr(row, column) for name, column in COLUMN_OF_FIELD.items()}
    values["param"] = _decode_param(row.param)
    values["is_active"] = _decode_active(row.isActive)
    return Schedule(
        id=row.id,
        created_at=_decode_timestamp(row.createdAt),
        updated_at=_decode_timestamp(row.updatedAt),
        **values,
    )


def _attempt_from_row(row: JobHistory, origin: str | None = None) -> Attempt:
    return Attempt(
        id=row.id,
        job_name=row.jobName,
        param=row.param,
        status=row.status,
        error=row.error,
        start_at=row.startAt,
        end_at=row.endAt,
        schedule_id=row.scheduleId,
        flow_run_id=row.flowRunId,
        attempt=row.attempt,
        peak_memory_bytes=row.peakMemoryBytes,
        origin=origin,
    )


# ``param`` is read as text and decoded per row: on SQLite plain SQL can store text that
# is not JSON, and one such row must not make the whole table unreadable. ``isActive`` and
# the timestamps are read raw for the same reason (``_decode_active``, ``_decode_timestamp``).
_SCHEDULE_COLUMNS = [
    JobSchedule.id,
    type_coerce(JobSchedule.createdAt, NullType()).label("createdAt"),
    type_coerce(JobSchedule.updatedAt, NullType()).label("updatedAt"),
    *(
        getattr(JobSchedule, column)
        for name, column in COLUMN_OF_FIELD.items()
        if name not in ("param", "is_active")
    ),
    cast(JobSchedule.param, Text).label("param"),
    type_coerce(JobSchedule.isActive, NullType()).label("isActive"),
]


# The shortest start of an id taken for the id (``git`` takes 4 characters too).
MIN_ID_PREFIX = 4
MAX_PREFIX_MATCHES_SHOWN = 5


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class Repository:
    def __init__(self, engine: Engine, actor: str = DEFAULT_ACTOR) -> None:
        self.engine = engine
        self.actor = actor
        self._sessions = session_factory(engine)
        self._uuid_ids: bool | None = None

    def _ids_are_uuids(self) -> bool:
        """Whether ``JobSchedule.id`` is a PostgreSQL ``uuid`` column (the original system's
        ``@db.Uuid``) rather than TEXT; read once."""
        if self._uuid_ids is None:
            if self.engine.dialect.name != "postgresql":
                self._uuid_ids = False
            else:
                with self.session() as session:
                    self._uuid_ids = (
                        session.scalar(
                            text(
                                "SELECT data_type FROM information_schema.columns "
                                "WHERE table_schema = current_schema() "
                                "AND table_name = 'JobSchedule' AND column_name = 'id'"
                            )
                        )
                        == "uuid"
                    )
        return self._uuid_ids

    def _may_name_a_row(self, schedule_id: str) -> bool:
        """False for an id no row can have: one with NUL, or no UUID where ids are UUIDs
        (PostgreSQL would refuse the comparison rather than find nothing)."""
        if not _can_be_stored(schedule_id):
            return False
        return _is_uuid(schedule_id) or not self._ids_are_uuids()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with translate_errors(), self._sessions.begin() as session:
            yield session

    def acting_as(self, actor: str) -> Repository:
        """This repository, its writes to JobSchedule attributed to ``actor`` in the audit
        (``cli:<user>``, ``api:<token name>``)."""
        bound = copy.copy(self)
        bound.actor = actor
        return bound

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """A transaction whose changes to JobSchedule the audit triggers (migration 0006)
        attribute to ``self.actor``: a transaction-local setting on PostgreSQL; on SQLite a
        row of ``jobctl_audit_actor``, deleted before the commit, so never seen by others."""
        with self.session() as session:
            if self.engine.dialect.name == "postgresql":
                session.execute(select(func.set_config("jobctl.actor", self.actor, True)))
                yield session
                return
            session.execute(insert(AuditActor).values(actor=self.actor))
            yield session
            session.execute(delete(AuditActor))

    # -- schedules -------------------------------------------------------------------

    def list_schedules(self) -> list[Schedule]:
        with self.session() as session:
            rows = session.execute(select(*_SCHEDULE_COLUMNS).order_by(JobSchedule.createdAt))
            return [_schedule_from_row(row) for row in rows]

    def get_schedule_or_none(self, schedule_id: str) -> Schedule | None:
        if not self._may_name_a_row(schedule_id):
            return None
        with self.session() as session:
            row = session.execute(
                select(*_SCHEDULE_COLUMNS).where(JobSchedule.id == schedule_id)
            ).one_or_none()
            return None if row is None else _schedule_from_row(row)

    def get_schedule(self, schedule_id: str) -> Schedule:
        schedule = self.get_schedule_or_none(schedule_id)
        if schedule is None:
            raise errors.ScheduleNotFound(f"no schedule has the id {schedule_id!r}")
        return schedule

    def resolve_schedule_id(self, given: str) -> str:
        """The id of the one row whose id is ``given`` or starts with it (the 8 characters
        ``status`` and ``history`` print, say); ``ScheduleNotFound`` when none does,
        ``InvalidInput`` when several do."""
        if self.get_schedule_or_none(given) is not None:
            return given
        if len(given) < MIN_ID_PREFIX or not _can_be_stored(given):
            raise errors.ScheduleNotFound(f"no schedule has the id {given!r}")
        as_text = cast(JobSchedule.id, Text)
        with self.session() as session:
            found = session.scalars(
                select(as_text)
                .where(as_text.startswith(given, autoescape=True))
                .order_by(as_text)
                .limit(MAX_PREFIX_MATCHES_SHOWN + 1)
            ).all()
        if not found:
            raise errors.ScheduleNotFound(f"no schedule has the id {given!r}")
        if len(found) > 1:
            shown = ", ".join(found[:MAX_PREFIX_MATCHES_SHOWN])
            more = ", …" if len(found) > MAX_PREFIX_MATCHES_SHOWN else ""
            raise errors.InvalidInput(
                f"{given!r} starts the ids of several schedules ({shown}{more}): give more of it"
            )
        return found[0]

    def add_schedule(self, spec: ScheduleSpec, schedule_id: str | None = None) -> Schedule:
        values = {COLUMN_OF_FIELD[name]: getattr(spec, name) for name in SPEC_FIELDS}
        with self._writing() as session:
            row = JobSchedule(**values)
            if schedule_id is not None:
                row.id = schedule_id
            session.add(row)
            session.flush()
            new_id = row.id
        return self.get_schedule(new_id)

    def update_schedule(self, schedule_id: str, **changes: Any) -> Schedule:
        unknown = set(changes) - set(SPEC_FIELDS)
        if unknown:
            raise ValueError(f"not schedule fields: {', '.join(sorted(unknown))}")
        if not self._may_name_a_row(schedule_id):
            raise errors.ScheduleNotFound(f"no schedule has the id {schedule_id!r}")
        values = {COLUMN_OF_FIELD[name]: value for name, value in changes.items()}
        values["updatedAt"] = utcnow()
        with self._writing() as session:
            result = session.execute(
                update(JobSchedule).where(JobSchedule.id == schedule_id).values(**values)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise errors.ScheduleNotFound(f"no schedule has the id {schedule_id!r}")
        return self.get_schedule(schedule_id)

    def delete_schedule(self, schedule_id: str) -> None:
        if not self._may_name_a_row(schedule_id):
            raise errors.ScheduleNotFound(f"no schedule has the id {schedule_id!r}")
        with self._writing() as session:
            result = session.execute(delete(JobSchedule).where(JobSchedule.id == schedule_id))
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise errors.ScheduleNotFound(f"no schedule has the id {schedule_id!r}")

    def apply_schedules(
        self,
        *,
        adds: Sequence[tuple[str, ScheduleSpec]] = (),
        updates: Sequence[tuple[str, Mapping[str, Any]]] = (),
        deletes: Sequence[str] = (),
    ) -> None:
        """Add rows (with their ids), change the given fields of rows, delete rows: all in
        one transaction, so either every change lands or none. Nothing to do runs no SQL.

        A row to update or delete that no longer exists raises ``ScheduleNotFound`` and
        rolls everything back.
        """
        if not (adds or updates or deletes):
            return
        for schedule_id in [*(i for i, _ in updates), *deletes]:
            if not self._may_name_a_row(schedule_id):
                raise errors.ScheduleNotFound(f"no schedule has the id {schedule_id!r}")
        for schedule_id, _ in adds:
            if not self._may_name_a_row(schedule_id):
                raise errors.InvalidInput(
                    f"id {schedule_id!r} cannot be stored: JobSchedule.id holds UUIDs here"
                )
        with self._writing() as session:
            for schedule_id, changes in updates:
                unknown = set(changes) - set(SPEC_FIELDS)
                if unknown:
                    raise ValueError(f"not schedule fields: {', '.join(sorted(unknown))}")
                values = {COLUMN_OF_FIELD[name]: value for name, value in changes.items()}
                values["updatedAt"] = utcnow()
                result = session.execute(
                    update(JobSchedule).where(JobSchedule.id == schedule_id).values(**values)
                )
                if result.rowcount == 0:  # type: ignore[attr-defined]
                    raise errors.ScheduleNotFound(f"no schedule has the id {schedule_id!r}")
            for schedule_id in deletes:
                result = session.execute(delete(JobSchedule).where(JobSchedule.id == schedule_id))
                if result.rowcount == 0:  # type: ignore[attr-defined]
                    raise errors.ScheduleNotFound(f"no schedule has the id {schedule_id!r}")
            for schedule_id, spec in adds:
                values = {COLUMN_OF_FIELD[name]: getattr(spec, name) for name in SPEC_FIELDS}
                session.add(JobSchedule(id=schedule_id, **values))
            session.flush()

    def schedule_version(self) -> int:
        """A counter that database triggers bump on every change to JobSchedule."""
        with self.session() as session:
            value = session.scalar(
                select(JobctlState.value).where(JobctlState.key == SCHEDULE_VERSION_KEY)
            )
            return int(value or 0)

    # -- history ---------------------------------------------------------------------

    def _insert(self, session: Session) -> Any:
        dialect = session.get_bind().dialect.name
        return (postgresql if dialect == "postgresql" else sqlite).insert(JobHistory)

    def start_attempt(
        self,
        *,
        flow_run_id: str,
        attempt: int,
        job_name: str,
        param: Any,
        schedule_id: str | None,
        start_at: datetime | None = None,
    ) -> int:
        """Record an attempt as PROCESSING; a replay of the same (run, attempt) writes nothing."""
        with self.session() as session:
            statement = (
                self._insert(session)
                .values(
                    jobName=job_name,
                    param=param,
                    status=JobStatus.PROCESSING,
                    startAt=start_at or utcnow(),
                    scheduleId=schedule_id,
                    flowRunId=flow_run_id,
                    attempt=attempt,
                )
                .on_conflict_do_nothing(index_elements=["flowRunId", "attempt"])
            )
            session.execute(statement)
            history_id = session.scalar(
                select(JobHistory.id).where(
                    JobHistory.flowRunId == flow_run_id, JobHistory.attempt == attempt
                )
            )
            assert history_id is not None
            return history_id

    def finish_attempt(
        self,
        *,
        flow_run_id: str,
        attempt: int,
        status: JobStatus,
        job_name: str,
        param: Any,
        schedule_id: str | None,
        error: str | None = None,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        peak_memory_bytes: int | None = None,
        correct: bool = False,
    ) -> bool:
        """Close an attempt; the first outcome wins, so a replayed hook changes nothing.

        With ``correct`` an outcome already written that differs from ``status`` is
        replaced: Prefect's final state is the truth (a timeout can end a run as TimedOut
        after its body wrote SUCCESS). If the start was never recorded (the database was
        down then), the whole row is written now. Returns whether anything was written.
        """
        if status is JobStatus.PROCESSING:
            raise ValueError("an attempt finishes as SUCCESS or FAILED")
        end_at = end_at or utcnow()
        with self.session() as session:
            statement = self._insert(session).values(
                jobName=job_name,
                param=param,
                status=status,
                error=error,
                startAt=start_at or end_at,
                endAt=end_at,
                scheduleId=schedule_id,
                flowRunId=flow_run_id,
                attempt=attempt,
                peakMemoryBytes=peak_memory_bytes,
            )
            statement = statement.on_conflict_do_update(
                index_elements=["flowRunId", "attempt"],
                set_={
                    "status": statement.excluded.status,
                    "error": statement.excluded.error,
                    "endAt": statement.excluded.endAt,
                    "peakMemoryBytes": statement.excluded.peakMemoryBytes,
                },
                where=(JobHistory.status != status)
                if correct
                else (JobHistory.status == JobStatus.PROCESSING),
            )
            # RETURNING, not rowcount: psycopg reports -1 for ON CONFLICT DO UPDATE.
            return session.execute(statement.returning(JobHistory.id)).first() is not None

    def list_history(self, query: HistoryFilter) -> list[Attempt]:
        if not _can_be_stored(query.job_name, query.schedule_id, query.flow_run_id):
            return []
        # Outer join: only runs a backfill created have an origin row.
        statement = select(JobHistory, RunOrigin.origin).outerjoin(
            RunOrigin, RunOrigin.flowRunId == JobHistory.flowRunId
        )
        if query.job_name is not None:
            statement = statement.where(JobHistory.jobName == query.job_name)
        if query.status is not None:
            statement = statement.where(JobHistory.status == query.status)
        if query.since is not None:
            statement = statement.where(JobHistory.startAt >= query.since)
        if query.until is not None:
            statement = statement.where(JobHistory.startAt < query.until)
        if query.schedule_id is not None:
            statement = statement.where(JobHistory.scheduleId == query.schedule_id)
        if query.flow_run_id is not None:
            statement = statement.where(JobHistory.flowRunId == query.flow_run_id)
        statement = (
            statement.order_by(JobHistory.startAt.desc(), JobHistory.id.desc())
            .limit(query.limit)
            .offset(query.offset)
        )
        with self.session() as session:
            return [_attempt_from_row(row, origin) for row, origin in session.execute(statement)]

    def get_attempt(self, history_id: int) -> Attempt:
        with self.session() as session:
            row = session.get(JobHistory, history_id)
            if row is None:
                raise errors.HistoryNotFound(f"no history row has the id {history_id}")
            origin = session.scalar(
                select(RunOrigin.origin).where(RunOrigin.flowRunId == row.flowRunId)
            )
            return _attempt_from_row(row, origin)

    def list_processing(self) -> list[Attempt]:
        with self.session() as session:
            rows = session.scalars(
                select(JobHistory)
                .where(JobHistory.status == JobStatus.PROCESSING)
                .order_by(JobHistory.id)
            )
            return [_attempt_from_row(row) for row in rows]

    def count_history_before(self, older_than: datetime) -> int:
        """How many attempts started before ``older_than`` (what a purge would delete)."""
        with self.session() as session:
            statement = select(func.count()).where(JobHistory.startAt < older_than)
            return int(session.scalar(statement) or 0)

    def purge_history(
        self,
        older_than: datetime,
        batch_size: int = PURGE_BATCH_SIZE,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Delete attempts that started before ``older_than``, one short transaction a
        batch; ``on_batch`` hears the count deleted so far after each."""
        return self.delete_in_batches(
            JobHistory.id, JobHistory.startAt < older_than, batch_size, on_batch
        )

    def delete_in_batches(
        self,
        key: InstrumentedAttribute[int],
        condition: ColumnElement[bool],
        batch_size: int = PURGE_BATCH_SIZE,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Delete the rows of ``key``'s table that meet ``condition``, ``batch_size`` rows
        (lowest keys first) a short transaction, so a large purge never holds a long lock;
        the count deleted."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        table = key.class_
        purged = 0
        while True:
            with self.session() as session:
                batch = (
                    select(key).where(condition).order_by(key).limit(batch_size).scalar_subquery()
                )
                result = session.execute(delete(table).where(key.in_(batch)))
                deleted = int(result.rowcount)  # type: ignore[attr-defined]
            purged += deleted
            if on_batch is not None:
                on_batch(purged)
            if deleted < batch_size:
                return purged

    def flow_runs_with_history(self, flow_run_ids: list[str]) -> set[str]:
        """Which of ``flow_run_ids`` have at least one JobHistory row."""
        found: set[str] = set()
        with self.session() as session:
            for start in range(0, len(flow_run_ids), 500):
                chunk = flow_run_ids[start : start + 500]
                found.update(
                    session.scalars(
                        select(JobHistory.flowRunId).where(JobHistory.flowRunId.in_(chunk))
                    )
                )
        return found

    def recorded_attempts(self, flow_run_ids: list[str]) -> dict[str, dict[int, JobStatus]]:
        """The attempt numbers with a JobHistory row and their status, of each of
        ``flow_run_ids`` that has one (a row without a number counts as attempt 1)."""
        found: dict[str, dict[int, JobStatus]] = {}
        with self.session() as session:
            for start in range(0, len(flow_run_ids), 500):
                chunk = flow_run_ids[start : start + 500]
                statement = select(
                    JobHistory.flowRunId, JobHistory.attempt, JobHistory.status
                ).where(JobHistory.flowRunId.in_(chunk))
                for flow_run_id, attempt, status in session.execute(statement):
                    found.setdefault(str(flow_run_id), {})[int(attempt or 1)] = JobStatus(status)
        return found

    def count_history(self) -> int:
        with self.session() as session:
            return int(session.scalar(select(func.count()).select_from(JobHistory)) or 0)

    # -- health ----------------------------------------------------------------------

    def ping(self) -> None:
        with self.session() as session:
            session.execute(text("SELECT 1"))

    # -- maintenance pause (jobctl.maintenance) -----------------------------------------

    def get_maintenance_or_none(self) -> Maintenance | None:
        """The open pause (not ended by ``resume``; its ``until`` may have passed)."""
        with self.session() as session:
            return open_maintenance(session)

    def start_maintenance(
        self, *, reason: str, set_by: str, until: datetime | None, now: datetime
    ) -> Maintenance:
        """Open a pause; raises ``AlreadyPaused`` while one is on (one whose ``until``
        passed is ended first)."""
        with self.session() as session:
            _end_expired(session, now)
            current = session.scalars(
                select(MaintenancePause).where(MaintenancePause.endedAt.is_(None))
            ).first()
            if current is not None:
                on = _maintenance_from_row(current).describe()
                raise errors.AlreadyPaused(f"already paused: {on}; resume it first")
            row = MaintenancePause(reason=reason, setBy=set_by, startedAt=now, until=until)
            session.add(row)
            try:
                session.flush()
            except IntegrityError as exc:  # another pause opened at the same time
                raise errors.AlreadyPaused("a maintenance pause is already on") from exc
            return _maintenance_from_row(row)

    def end_maintenance(self, *, ended_by: str, now: datetime) -> Maintenance | None:
        """End the open pause (at its ``until`` if that passed already); None if none."""
        with self.session() as session:
            row = session.scalars(
                select(MaintenancePause).where(MaintenancePause.endedAt.is_(None))
            ).first()
            if row is None:
                return None
            expired = row.until is not None and row.until <= now
            row.endedAt = row.until if expired else now
            row.endedBy = UNTIL_ENDED_BY if expired else ended_by
            session.flush()
            return _maintenance_from_row(row)

    def end_expired_maintenance(self, now: datetime) -> Maintenance | None:
        """End the open pause if its ``until`` has passed; returns it, or None."""
        with self.session() as session:
            return _end_expired(session, now)

    def list_maintenance(self, *, ended_after: datetime) -> list[Maintenance]:
        """Every pause still open or ended after ``ended_after``, oldest first."""
        with self.session() as session:
            rows = session.scalars(
                select(MaintenancePause)
                .where(
                    (MaintenancePause.endedAt.is_(None)) | (MaintenancePause.endedAt > ended_after)
                )
                .order_by(MaintenancePause.id)
            )
            return [_maintenance_from_row(row) for row in rows]

    def list_uncaught_maintenance(self, now: datetime) -> list[Maintenance]:
        """Pauses over at ``now`` whose missed runs were not caught up yet, oldest first."""
        with self.session() as session:
            rows = session.scalars(
                select(MaintenancePause)
                .where(MaintenancePause.caughtUpAt.is_(None))
                .order_by(MaintenancePause.id)
            )
            pauses = [_maintenance_from_row(row) for row in rows]
            return [pause for pause in pauses if not pause.is_on(now)]

    def mark_maintenance_caught_up(self, maintenance_id: int, now: datetime) -> None:
        with self.session() as session:
            session.execute(
                update(MaintenancePause)
                .where(MaintenancePause.id == maintenance_id)
                .values(caughtUpAt=now)
            )


def open_maintenance(session: Session) -> Maintenance | None:
    """The open pause, read in ``session`` (``/metrics`` asks in its own transaction)."""
    row = session.scalars(
        select(MaintenancePause).where(MaintenancePause.endedAt.is_(None))
    ).first()
    return None if row is None else _maintenance_from_row(row)


def _maintenance_from_row(row: MaintenancePause) -> Maintenance:
    return Maintenance(
        id=row.id,
        reason=row.reason,
        set_by=row.setBy,
        started_at=row.startedAt,
        until=row.until,
        ended_at=row.endedAt,
        ended_by=row.endedBy,
        caught_up_at=row.caughtUpAt,
    )


def _end_expired(session: Session, now: datetime) -> Maintenance | None:
    row = session.scalars(
        select(MaintenancePause).where(
            MaintenancePause.endedAt.is_(None),
            MaintenancePause.until.is_not(None),
            MaintenancePause.until <= now,
        )
    ).first()
    if row is None:
        return None
    row.endedAt, row.endedBy = row.until, UNTIL_ENDED_BY
    session.flush()
    return _maintenance_from_row(row)
