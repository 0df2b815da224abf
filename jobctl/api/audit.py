"""The audit trail of the JobSchedule rows: who changed which row, when, from what to what."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from jobctl import audit
from jobctl.api.dependencies import SECURED, RepositoryDep
from jobctl.api.history import instant

router = APIRouter(prefix="/v1/job/schedules", tags=["schedules"], dependencies=SECURED)

Since = Annotated[
    str | None,
    Query(description="Only changes made at or after this ISO-8601 time (UTC without zone)."),
]
Limit = Annotated[int, Query(ge=1, le=10_000)]


class ScheduleChange(BaseModel):
    """One insert, update or delete of a JobSchedule row, by jobctl or by plain SQL."""

    id: int
    at: datetime
    action: Literal["insert", "update", "delete"]
    scheduleId: str
    actor: str = Field(
        description="cli:<OS user>, api (JOBCTL_API_TOKEN), api:<token name> "
        "(JOBCTL_API_TOKENS), jobctl, or for plain SQL sql (SQLite) / sql:<database user>"
    )
    dbUser: str | None = Field(description="PostgreSQL's session_user; null on SQLite")
    application: str | None = Field(description="PostgreSQL's application_name; null on SQLite")
    changed: list[str] = Field(description="Columns whose value differs (timestamps aside)")
    before: dict[str, Any] | None = Field(description="The whole row before; null for insert")
    after: dict[str, Any] | None = Field(description="The whole row after; null for delete")

    @classmethod
    def of(cls, entry: audit.AuditEntry) -> ScheduleChange:
        return cls.model_validate(
            {**entry.to_json(), "at": entry.at, "changed": list(entry.changes())}
        )


@router.get("/log")
def all_changes(
    repository: RepositoryDep, since: Since = None, limit: Limit = audit.DEFAULT_LIMIT
) -> list[ScheduleChange]:
    """Changes to every schedule, newest first."""
    entries = audit.list_entries(repository, since=instant("since", since), limit=limit)
    return [ScheduleChange.of(entry) for entry in entries]


@router.get("/{schedule_id}/log")
def changes_of(
    schedule_id: str,
    repository: RepositoryDep,
    since: Since = None,
    limit: Limit = audit.DEFAULT_LIMIT,
) -> list[ScheduleChange]:
    """Changes to one schedule, newest first; a deleted row's too (404: no row has the
    id and no change of it is recorded)."""
    entries = audit.list_entries(
        repository, schedule_id=schedule_id, since=instant("since", since), limit=limit
    )
    return [ScheduleChange.of(entry) for entry in entries]
