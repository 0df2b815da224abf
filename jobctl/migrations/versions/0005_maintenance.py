"""The maintenance pause (issue 16): ``jobctl_maintenance``, one row per pause.

A table of jobctl's own, so that a pause never touches ``isActive`` or any column of the
original system: resuming restores exactly the rows that were active. At most one pause
is open (``endedAt`` null), which a unique partial index on a constant enforces.
Starting, ending or changing a pause bumps the schedule change counter of 0002 (and
NOTIFYs on PostgreSQL), so the sync watcher applies it at once; marking a pause caught
up (``caughtUpAt``) does not.

Idempotent like 0004: every object is created only when missing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLE = "jobctl_maintenance"
OPEN_INDEX = "jobctl_maintenance_one_open_idx"
OPEN_INDEX_SQL = (
    f'CREATE UNIQUE INDEX IF NOT EXISTS {OPEN_INDEX} ON {TABLE} ((1)) WHERE "endedAt" IS NULL'
)
# Reuses 0002's function: bump ``schedule_version`` and NOTIFY ``jobctl_schedule``.
POSTGRES_TRIGGER = f"""
CREATE TRIGGER jobctl_maintenance_changed
AFTER INSERT OR DELETE OR UPDATE OF reason, until, "endedAt" ON {TABLE}
FOR EACH STATEMENT EXECUTE FUNCTION jobctl_schedule_changed()
"""
SQLITE_EVENTS = {
    "insert": "INSERT",
    "delete": "DELETE",
    "update": 'UPDATE OF reason, until, "endedAt"',
}
SQLITE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS jobctl_maintenance_{name}
AFTER {event} ON {table}
BEGIN
    UPDATE jobctl_state SET value = value + 1 WHERE key = 'schedule_version';
END
"""


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if not inspector.has_table(TABLE):
        op.create_table(
            TABLE,
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("setBy", sa.Text(), nullable=False),
            sa.Column("startedAt", sa.DateTime(timezone=True), nullable=False),
            sa.Column("until", sa.DateTime(timezone=True), nullable=True),
            sa.Column("endedAt", sa.DateTime(timezone=True), nullable=True),
            sa.Column("endedBy", sa.Text(), nullable=True),
            sa.Column("caughtUpAt", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id", name=f"{TABLE}_pkey"),
        )
    op.execute(OPEN_INDEX_SQL)
    if bind.dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS jobctl_maintenance_changed ON {TABLE}")
        op.execute(POSTGRES_TRIGGER)
    else:
        for name, event in SQLITE_EVENTS.items():
            op.execute(SQLITE_TRIGGER.format(name=name, event=event, table=TABLE))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS jobctl_maintenance_changed ON {TABLE}")
    else:
        for name in SQLITE_EVENTS:
            op.execute(f"DROP TRIGGER IF EXISTS jobctl_maintenance_{name}")
    op.drop_table(TABLE)
