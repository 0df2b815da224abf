"""The audit trail of JobSchedule changes: who changed which row, when, from what to what.

- ``jobctl_schedule_audit``: one row per inserted, updated or deleted JobSchedule row,
  with the row before and after as JSON (column names as in the table). Triggers write
  it, so changes by plain SQL are kept like jobctl's own; an UPDATE that changes nothing
  leaves no row.
- Who: jobctl names the actor of its own writes in the same transaction (``cli:<user>``,
  ``api:<token name>``). On PostgreSQL it sets ``jobctl.actor`` for the transaction only
  (``set_config(..., true)``); the trigger falls back to ``sql:<session_user>`` and also
  keeps ``session_user`` and ``application_name``. SQLite has no session state a trigger
  can read and the ``sqlite3`` shell no functions of ours: jobctl writes its actor into
  ``jobctl_audit_actor`` (SQLite only, one row at most) and deletes it before committing,
  so no other connection ever sees it (SQLite has one writer at a time); without it a row
  says ``sql``.
- The PostgreSQL trigger function is SECURITY DEFINER: a user who may edit JobSchedule
  need not be allowed to write (or forge) the audit table. TRUNCATE is kept as a delete
  of every row.
- SQLite has no row-to-JSON: its triggers name the columns JobSchedule has when this
  runs. A later migration that adds a column to JobSchedule must re-create them (a test
  checks that the audit covers every column).

Idempotent, like 0004, on a new database and on the original system's taken over.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

AUDIT_TABLE = "jobctl_schedule_audit"
ACTOR_TABLE = "jobctl_audit_actor"
SCHEDULE_INDEX = "jobctl_schedule_audit_scheduleId_at_id_idx"
AT_INDEX = "jobctl_schedule_audit_at_idx"
EVENTS = ("INSERT", "UPDATE", "DELETE")

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION jobctl_schedule_audit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    who text := coalesce(
        nullif(current_setting('jobctl.actor', true), ''), 'sql:' || session_user
    );
    app_name text := current_setting('application_name', true);
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO jobctl_schedule_audit
            ("action", "scheduleId", "before", "after", "actor", "dbUser", "application")
        SELECT 'delete', s."id"::text, to_jsonb(s), NULL, who, session_user, app_name
        FROM "JobSchedule" AS s;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND to_jsonb(OLD) = to_jsonb(NEW) THEN
        RETURN NULL;
    END IF;
    INSERT INTO jobctl_schedule_audit
        ("action", "scheduleId", "before", "after", "actor", "dbUser", "application")
    VALUES (
        lower(TG_OP),
        CASE WHEN TG_OP = 'DELETE' THEN OLD."id" ELSE NEW."id" END::text,
        CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END,
        CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END,
        who,
        session_user,
        app_name
    );
    RETURN NULL;
END;
$$
"""
POSTGRES_TRIGGERS = {
    "jobctl_schedule_audit": 'AFTER INSERT OR UPDATE OR DELETE ON "JobSchedule" '
    "FOR EACH ROW EXECUTE FUNCTION jobctl_schedule_audit()",
    "jobctl_schedule_audit_truncate": 'BEFORE TRUNCATE ON "JobSchedule" '
    "FOR EACH STATEMENT EXECUTE FUNCTION jobctl_schedule_audit()",
}

# The same text as SQLAlchemy writes (and compares) times on SQLite: UTC, microseconds.
SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', 'now')"
SQLITE_ACTOR = f"coalesce((SELECT actor FROM {ACTOR_TABLE} LIMIT 1), 'sql')"


def _sqlite_value(row: str, column: str) -> str:
    """A column of ``row`` (NEW or OLD) as a JSON value, the way PostgreSQL's to_jsonb
    shows it: param as JSON (or the text plain SQL left there), isActive as a boolean.
    A BLOB, which JSON cannot hold (SQLite would refuse the whole write), as X'<hex>'."""
    value = f'{row}."{column}"'
    shown = value
    if column == "param":
        shown = f"CASE WHEN json_valid({value}) THEN json({value}) ELSE {value} END"
    elif column == "isActive":
        shown = (
            f"CASE WHEN typeof({value}) = 'integer' AND {value} IN (0, 1) "
            f"THEN json(CASE {value} WHEN 1 THEN 'true' ELSE 'false' END) ELSE {value} END"
        )
    as_hex = f"'X''' || hex({value}) || ''''"
    return f"CASE WHEN typeof({value}) = 'blob' THEN {as_hex} ELSE {shown} END"


def _sqlite_row_json(row: str, columns: list[str]) -> str:
    pairs = ", ".join(f"'{column}', {_sqlite_value(row, column)}" for column in columns)
    return f"json_object({pairs})"


def _sqlite_trigger(event: str, columns: list[str]) -> str:
    before = "NULL" if event == "INSERT" else _sqlite_row_json("OLD", columns)
    after = "NULL" if event == "DELETE" else _sqlite_row_json("NEW", columns)
    row = "OLD" if event == "DELETE" else "NEW"
    when = ""
    if event == "UPDATE":
        when = "WHEN " + " OR ".join(f'OLD."{c}" IS NOT NEW."{c}"' for c in columns)
    return f"""
CREATE TRIGGER jobctl_schedule_audit_{event.lower()}
AFTER {event} ON "JobSchedule" {when}
BEGIN
    INSERT INTO {AUDIT_TABLE}
        ("at", "action", "scheduleId", "before", "after", "actor")
    VALUES ({SQLITE_NOW}, '{event.lower()}', {row}."id", {before}, {after}, {SQLITE_ACTOR});
END
"""


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _create_tables(inspector: sa.Inspector) -> None:
    if not inspector.has_table(AUDIT_TABLE):
        op.create_table(
            AUDIT_TABLE,
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column(
                "at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.text("CURRENT_TIMESTAMP"),
            ),
            sa.Column("action", sa.Text(), nullable=False),
            sa.Column("scheduleId", sa.Text(), nullable=False),
            sa.Column("before", _json(), nullable=True),
            sa.Column("after", _json(), nullable=True),
            sa.Column("actor", sa.Text(), nullable=False),
            sa.Column("dbUser", sa.Text(), nullable=True),
            sa.Column("application", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("id", name=f"{AUDIT_TABLE}_pkey"),
        )
        op.create_index(SCHEDULE_INDEX, AUDIT_TABLE, ["scheduleId", "at", "id"])
        op.create_index(AT_INDEX, AUDIT_TABLE, ["at"])
    if op.get_bind().dialect.name == "sqlite" and not inspector.has_table(ACTOR_TABLE):
        op.create_table(
            ACTOR_TABLE,
            sa.Column("actor", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("actor", name=f"{ACTOR_TABLE}_pkey"),
        )


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    _create_tables(inspector)
    if bind.dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        for name, definition in POSTGRES_TRIGGERS.items():
            op.execute(f'DROP TRIGGER IF EXISTS {name} ON "JobSchedule"')
            op.execute(f"CREATE TRIGGER {name} {definition}")
        return
    columns = [column["name"] for column in inspector.get_columns("JobSchedule")]
    for event in EVENTS:
        op.execute(f"DROP TRIGGER IF EXISTS jobctl_schedule_audit_{event.lower()}")
        op.execute(_sqlite_trigger(event, columns))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in POSTGRES_TRIGGERS:
            op.execute(f'DROP TRIGGER IF EXISTS {name} ON "JobSchedule"')
        op.execute("DROP FUNCTION IF EXISTS jobctl_schedule_audit()")
    else:
        for event in EVENTS:
            op.execute(f"DROP TRIGGER IF EXISTS jobctl_schedule_audit_{event.lower()}")
        op.drop_table(ACTOR_TABLE)
    op.drop_table(AUDIT_TABLE)
