"""The alert targets the last sync found no Prefect notification block for.

- ``jobctl_alert_target_problem``: one row per ``alertTo`` slug (a row's, or
  ``JOBCTL_ALERT_TO``) that the last sync could not resolve, with its reason. The sync
  rejects the rows that alert there; status, metrics and the missed-run monitor, which do
  not ask Prefect, read their rejection here.

Idempotent, like 0004, on a new database and on the original system's taken over.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PROBLEM_TABLE = "jobctl_alert_target_problem"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(PROBLEM_TABLE):
        op.create_table(
            PROBLEM_TABLE,
            sa.Column("slug", sa.Text(), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("foundAt", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("slug", name="jobctl_alert_target_problem_pkey"),
        )


def downgrade() -> None:
    op.drop_table(PROBLEM_TABLE)
