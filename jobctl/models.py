"""The two tables, named exactly as the original (Prisma) system named them.

Columns of our own are nullable or defaulted, so a database created by the original
system keeps working; they arrive through the Alembic migrations in ``migrations/``.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Index,
    Integer,
    MetaData,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

NAMING_CONVENTION = {
    "ix": "%(table_name)s_%(column_0_N_name)s_idx",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


class DateTimeUTC(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python and refuses naive values.

    The original system's columns are ``timestamp(3)`` without zone holding UTC; ours are
    ``timestamptz``. Connections run with the UTC session zone, so both read back the same.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} refused: pass a timezone-aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive one (a column without zone) is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JsonValue = JSON().with_variant(JSONB(), "postgresql")


class _UncastText(UserDefinedType[str]):
    """TEXT whose bound values carry no type: PostgreSQL reads them as the column's own."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "TEXT"


class ScheduleId(TypeDecorator[str]):
    """A schedule id: text in Python, TEXT or PostgreSQL ``uuid`` in the database.

    Prisma makes ``String @id`` a TEXT column and ``@db.Uuid`` a ``uuid`` one, and both
    hold the original system's rows. SQLAlchemy's psycopg dialect casts text parameters to
    VARCHAR, which a ``uuid`` column cannot be compared with; an untyped parameter takes
    the column's type, whichever it is. Values read back are text either way.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return _UncastText()
        return dialect.type_descriptor(Text())

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(value)


class JobStatus(enum.Enum):
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


def _new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class JobSchedule(Base):
    __tablename__ = "JobSchedule"

    # A UUID, held in TEXT (Prisma's `String @id @default(uuid())`) or in `uuid` (`@db.Uuid`).
    id: Mapped[str] = mapped_column(ScheduleId, primary_key=True, default=_new_id)
    cron: Mapped[str] = mapped_column(Text)
    jobName: Mapped[str] = mapped_column(Text)
    param: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    isActive: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    description: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int | None] = mapped_column(Integer)
    timeout: Mapped[int | None] = mapped_column(Integer)
    maxRetries: Mapped[int | None] = mapped_column(Integer)
    createdAt: Mapped[datetime] = mapped_column(
        DateTimeUTC, default=utcnow, server_default=func.now()
    )
    updatedAt: Mapped[datetime] = mapped_column(
        DateTimeUTC, default=utcnow, onupdate=utcnow, server_default=func.now()
    )
    # Ours.
    timezone: Mapped[str | None] = mapped_column(Text)
    retryDelay: Mapped[int | None] = mapped_column(Integer)
    retryBackoff: Mapped[str] = mapped_column(Text, default="fixed", server_default="fixed")
    overlap: Mapped[str] = mapped_column(Text, default="allow", server_default="allow")
    misfireGrace: Mapped[int | None] = mapped_column(Integer)
    alertTo: Mapped[str | None] = mapped_column(Text)  # a notification block's slug


class JobHistory(Base):
    __tablename__ = "JobHistory"
    __table_args__ = (
        UniqueConstraint("flowRunId", "attempt"),
        Index("JobHistory_jobName_startAt_id_idx", "jobName", "startAt", "id"),
        Index("JobHistory_startAt_idx", "startAt"),
        Index("JobHistory_status_startAt_id_idx", "status", "startAt", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    jobName: Mapped[str] = mapped_column(Text)
    param: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    status: Mapped[JobStatus] = mapped_column(Enum(JobStatus, name="JobStatus"))
    error: Mapped[str | None] = mapped_column(Text)
    startAt: Mapped[datetime] = mapped_column(
        DateTimeUTC, default=utcnow, server_default=func.now()
    )
    endAt: Mapped[datetime | None] = mapped_column(DateTimeUTC)
    # Ours.
    scheduleId: Mapped[str | None] = mapped_column(Text)
    flowRunId: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int | None] = mapped_column(Integer)
    peakMemoryBytes: Mapped[int | None] = mapped_column(BigInteger)


class JobctlState(Base):
    """Bookkeeping of our own: the schedule change counter that triggers bump."""

    __tablename__ = "jobctl_state"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
