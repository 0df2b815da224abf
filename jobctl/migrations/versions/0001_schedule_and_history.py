"""JobSchedule and JobHistory, created or completed.

On an empty database this creates both tables. On a database the original (Prisma)
system created, it adds only the columns, constraints and indexes that are missing: it
never drops, retypes or rewrites what is there.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from jobctl import errors

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = ("PROCESSING", "SUCCESS", "FAILED")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _now() -> sa.sql.elements.TextClause:
    return sa.text("CURRENT_TIMESTAMP")


def _status_type() -> sa.types.TypeEngine[str]:
    if op.get_bind().dialect.name == "postgresql":
        return postgresql.ENUM(*STATUSES, name="JobStatus", create_type=False)
    return sa.Enum(*STATUSES, name="JobStatus", native_enum=False, create_constraint=False)


ColumnFactory = Callable[[], "sa.Column[Any]"]

SCHEDULE_COLUMNS: list[ColumnFactory] = [
    lambda: sa.Column("id", sa.Text(), primary_key=True),
    lambda: sa.Column("cron", sa.Text(), nullable=False),
    lambda: sa.Column("jobName", sa.Text(), nullable=False),
    lambda: sa.Column("param", _json()),
    lambda: sa.Column("isActive", sa.Boolean(), nullable=False, server_default=sa.true()),
    lambda: sa.Column("description", sa.Text()),
    lambda: sa.Column("priority", sa.Integer()),
    lambda: sa.Column("timeout", sa.Integer()),
    lambda: sa.Column("maxRetries", sa.Integer()),
    lambda: sa.Column(
        "createdAt", sa.DateTime(timezone=True), nullable=False, server_default=_now()
    ),
    lambda: sa.Column(
        "updatedAt", sa.DateTime(timezone=True), nullable=False, server_default=_now()
    ),
    lambda: sa.Column("timezone", sa.Text()),
    lambda: sa.Column("retryDelay", sa.Integer()),
    lambda: sa.Column("retryBackoff", sa.Text(), nullable=False, server_default="fixed"),
    lambda: sa.Column("overlap", sa.Text(), nullable=False, server_default="allow"),
    lambda: sa.Column("misfireGrace", sa.Integer()),
]

HISTORY_COLUMNS: list[ColumnFactory] = [
    lambda: sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    lambda: sa.Column("jobName", sa.Text(), nullable=False),
    lambda: sa.Column("param", _json()),
    lambda: sa.Column("status", _status_type(), nullable=False),
    lambda: sa.Column("error", sa.Text()),
    lambda: sa.Column("startAt", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    lambda: sa.Column("endAt", sa.DateTime(timezone=True)),
    lambda: sa.Column("scheduleId", sa.Text()),
    lambda: sa.Column("flowRunId", sa.Text()),
    lambda: sa.Column("attempt", sa.Integer()),
    lambda: sa.Column("peakMemoryBytes", sa.BigInteger()),
]

HISTORY_INDEXES = {
    "JobHistory_jobName_startAt_idx": ["jobName", "startAt"],
    "JobHistory_startAt_idx": ["startAt"],
    "JobHistory_status_startAt_idx": ["status", "startAt"],
}
HISTORY_UNIQUE = ("JobHistory_flowRunId_attempt_key", ["flowRunId", "attempt"])


def _create_or_complete(table: str, columns: list[ColumnFactory]) -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(table):
        op.create_table(
            table,
            *(make() for make in columns),
            sa.PrimaryKeyConstraint("id", name=f"{table}_pkey"),
        )
        return
    present = {column["name"] for column in inspector.get_columns(table)}
    for make in columns:
        column = make()
        if column.name not in present:
            column.primary_key = False
            op.add_column(table, column)


# Prisma's SQLite connector stores DateTime as integer epoch milliseconds; our columns hold
# ISO text, and SQLite compares every integer below every text, so a time filter (or a
# purge) on such rows would be silently wrong. Refuse rather than rewrite the data.
PRISMA_SQLITE_TIMES = {"JobSchedule": "createdAt", "JobHistory": "startAt"}


def _refuse_prisma_sqlite_times() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    inspector = sa.inspect(bind)
    for table, column in PRISMA_SQLITE_TIMES.items():
        if not inspector.has_table(table):
            continue
        found = bind.execute(
            sa.text(f'SELECT 1 FROM "{table}" WHERE typeof("{column}") = \'integer\' LIMIT 1')
        ).first()
        if found is not None:
            raise errors.IncompatibleDatabase(
                f'"{table}"."{column}" holds epoch milliseconds (a Prisma SQLite database): '
                "jobctl upgrades the original system's PostgreSQL schema; on SQLite it "
                "would have to rewrite every timestamp, so it changed nothing"
            )


def upgrade() -> None:
    bind = op.get_bind()
    _refuse_prisma_sqlite_times()
    if bind.dialect.name == "postgresql":
        postgresql.ENUM(*STATUSES, name="JobStatus").create(bind, checkfirst=True)
    _create_or_complete("JobSchedule", SCHEDULE_COLUMNS)
    _create_or_complete("JobHistory", HISTORY_COLUMNS)

    inspector = sa.inspect(bind)
    present_indexes = {index["name"] for index in inspector.get_indexes("JobHistory")}
    present_uniques = {
        *(u["name"] for u in inspector.get_unique_constraints("JobHistory")),
        *present_indexes,
    }
    unique_name, unique_columns = HISTORY_UNIQUE
    if unique_name not in present_uniques:
        op.create_index(unique_name, "JobHistory", unique_columns, unique=True)
    for name, columns in HISTORY_INDEXES.items():
        if name not in present_indexes:
            op.create_index(name, "JobHistory", columns)


def downgrade() -> None:
    raise NotImplementedError("jobctl never drops the JobSchedule/JobHistory tables")
