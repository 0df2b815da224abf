"""Where a schedule's alerts go, the runs that were due and did not start, and an index
for "the latest attempt of each schedule".

- ``JobSchedule.alertTo``: the slug of a Prefect notification block
  (``custom-webhook/oncall``); null = the configured default (``JOBCTL_ALERT_TO``).
- ``jobctl_missed_run``: one row per due time of a schedule that no attempt started
  within its misfire grace. A table of its own, so that JobHistory (and the original
  system's readers of it) keep one row per attempt and the three JobStatus values.
  Unique on (scheduleId, dueAt): a detector that runs twice, or restarts, records and
  alerts a missed run once.
- ``JobHistory (scheduleId, startAt, id)``: `jobctl status` reads the latest attempt of
  each of thousands of schedules by index instead of scanning the history.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEDULE_INDEX = "JobHistory_scheduleId_startAt_id_idx"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "alertTo" not in {column["name"] for column in inspector.get_columns("JobSchedule")}:
        op.add_column("JobSchedule", sa.Column("alertTo", sa.Text(), nullable=True))
    if SCHEDULE_INDEX not in {index["name"] for index in inspector.get_indexes("JobHistory")}:
        op.create_index(SCHEDULE_INDEX, "JobHistory", ["scheduleId", "startAt", "id"])
    if not inspector.has_table("jobctl_missed_run"):
        op.create_table(
            "jobctl_missed_run",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("scheduleId", sa.Text(), nullable=False),
            sa.Column("jobName", sa.Text(), nullable=False),
            sa.Column("dueAt", sa.DateTime(timezone=True), nullable=False),
            sa.Column("detectedAt", sa.DateTime(timezone=True), nullable=False),
            sa.Column("reason", sa.Text(), nullable=True),
            sa.Column("alertedAt", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id", name="jobctl_missed_run_pkey"),
            sa.UniqueConstraint(
                "scheduleId", "dueAt", name="jobctl_missed_run_scheduleId_dueAt_key"
            ),
        )


def downgrade() -> None:
    op.drop_table("jobctl_missed_run")
    op.drop_index(SCHEDULE_INDEX, table_name="JobHistory")
    with op.batch_alter_table("JobSchedule") as batch:  # SQLite rebuilds the table
        batch.drop_column("alertTo")
