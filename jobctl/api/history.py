"""The JobHistory rows: one per attempt, filtered and paged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from jobctl.api.dependencies import SECURED, RepositoryDep
from jobctl.api.schemas import AttemptOut
from jobctl.models import JobStatus
from jobctl.records import HistoryFilter

router = APIRouter(prefix="/v1/job/history", tags=["history"], dependencies=SECURED)


@router.get("")
def history(
    repository: RepositoryDep,
    job: Annotated[str | None, Query(max_length=200)] = None,
    status: JobStatus | None = None,
    schedule: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[str | None, Query(description="ISO-8601")] = None,
    until: Annotated[str | None, Query(description="ISO-8601")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[AttemptOut]:
    query = HistoryFilter(
        job_name=job,
        status=status,
        schedule_id=schedule,
        since=instant("since", since),
        until=instant("until", until),
        limit=limit,
        offset=offset,
    )
    return [AttemptOut.of(row) for row in repository.list_history(query)]


@router.get("/{history_id}")
def attempt(
    history_id: Annotated[int, Path(ge=1, le=2**63 - 1)], repository: RepositoryDep
) -> AttemptOut:
    return AttemptOut.of(repository.get_attempt(history_id))


def instant(name: str, value: str | None) -> datetime | None:
    """An ISO-8601 query parameter as a UTC time (a time without zone is UTC)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise HTTPException(422, f"{name}: not an ISO-8601 time within years 1-9999") from None
