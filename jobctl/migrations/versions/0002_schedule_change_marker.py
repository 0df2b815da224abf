"""A change counter on JobSchedule, bumped by triggers (and NOTIFY on PostgreSQL).

Edits by plain SQL reach the sync watcher through it: on SQLite the watcher polls the
counter, on PostgreSQL it also LISTENs on ``jobctl_schedule``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION jobctl_schedule_changed() RETURNS trigger AS $$
BEGIN
    UPDATE jobctl_state SET value = value + 1 WHERE key = 'schedule_version';
    PERFORM pg_notify('jobctl_schedule', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
POSTGRES_TRIGGER = """
CREATE TRIGGER jobctl_schedule_changed
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "JobSchedule"
FOR EACH STATEMENT EXECUTE FUNCTION jobctl_schedule_changed()
"""
SQLITE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS jobctl_schedule_{event}
AFTER {event} ON "JobSchedule"
BEGIN
    UPDATE jobctl_state SET value = value + 1 WHERE key = 'schedule_version';
END
"""


def upgrade() -> None:
    op.create_table(
        "jobctl_state",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("key", name="jobctl_state_pkey"),
    )
    op.execute("INSERT INTO jobctl_state (key, value) VALUES ('schedule_version', 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        op.execute('DROP TRIGGER IF EXISTS jobctl_schedule_changed ON "JobSchedule"')
        op.execute(POSTGRES_TRIGGER)
    else:
        for event in ("INSERT", "UPDATE", "DELETE"):
            op.execute(SQLITE_TRIGGER.format(event=event))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('DROP TRIGGER IF EXISTS jobctl_schedule_changed ON "JobSchedule"')
        op.execute("DROP FUNCTION IF EXISTS jobctl_schedule_changed()")
    else:
        for event in ("INSERT", "UPDATE", "DELETE"):
            op.execute(f"DROP TRIGGER IF EXISTS jobctl_schedule_{event}")
    op.drop_table("jobctl_state")
