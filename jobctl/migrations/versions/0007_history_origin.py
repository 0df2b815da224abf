"""Where a run came from, when it is not the row's schedule: a backfill and its range.

- ``jobctl_run_origin``: one row per flow run that a backfill created, with the range it
  came from and the fire time it stands for (its logical time). A table of jobctl's own,
  keyed by the run (every attempt of a run shares it): ``JobHistory`` keeps the original
  system's columns, and its readers see attempts only; jobctl joins the two on
  ``flowRunId`` to show each attempt's origin.

Idempotent, like 0004, on a new database and on the original system's taken over.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ORIGIN_TABLE = "jobctl_run_origin"
SCHEDULE_INDEX = "jobctl_run_origin_scheduleId_logicalTime_idx"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(ORIGIN_TABLE):
        op.create_table(
            ORIGIN_TABLE,
            sa.Column("flowRunId", sa.Text(), nullable=False),
            sa.Column("scheduleId", sa.Text(), nullable=False),
            sa.Column("origin", sa.Text(), nullable=False),
            sa.Column("logicalTime", sa.DateTime(timezone=True), nullable=False),
            sa.Column("createdAt", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("flowRunId", name="jobctl_run_origin_pkey"),
        )
        op.create_index(SCHEDULE_INDEX, ORIGIN_TABLE, ["scheduleId", "logicalTime"])


def downgrade() -> None:
    op.drop_index(SCHEDULE_INDEX, table_name=ORIGIN_TABLE)
    op.drop_table(ORIGIN_TABLE)
