"""History indexes that also supply the listing order (startAt DESC, id DESC).

With (jobName, startAt) alone, PostgreSQL preferred walking the startAt index and
filtering, which costs tens of milliseconds at a million rows for a job that stopped
running days ago. With id in the index, "latest 50 of job X" and "failures since T" read
only the rows they return.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

REPLACED = {
    "JobHistory_jobName_startAt_idx": "JobHistory_jobName_startAt_id_idx",
    "JobHistory_status_startAt_idx": "JobHistory_status_startAt_id_idx",
}


def upgrade() -> None:
    present = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("JobHistory")}
    for old, new in REPLACED.items():
        if new not in present:
            column = old.split("_")[1]
            op.create_index(new, "JobHistory", [column, "startAt", "id"])
        if old in present:
            op.drop_index(old, table_name="JobHistory")


def downgrade() -> None:
    for old, new in REPLACED.items():
        column = old.split("_")[1]
        op.create_index(old, "JobHistory", [column, "startAt"])
        op.drop_index(new, table_name="JobHistory")
