"""The maintenance pause over HTTP: read it, set it, end it (``jobctl.maintenance``)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from jobctl import errors, maintenance
from jobctl.api.dependencies import SECURED, Caller, RepositoryDep
from jobctl.api.schemas import MaintenanceOut
from jobctl.repository import Repository

router = APIRouter(prefix="/v1/job", tags=["maintenance"], dependencies=SECURED)


class PauseRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2_000, description="Why the pause is on.")
    until: str | None = Field(
        default=None,
        description="When it ends by itself: an ISO-8601 time (UTC unless it says) or a "
        "duration from now (90s, 15m, 2h, 1d). Null: until resumed.",
        examples=["2026-12-01T12:00:00Z", "2h"],
    )


class MaintenanceState(BaseModel):
    paused: bool = Field(description="Whether a maintenance pause is on now.")
    pause: MaintenanceOut | None = Field(
        description="The pause on now; after a resume, the one it ended; else null."
    )


def current_state(repository: Repository, now: datetime) -> MaintenanceState:
    pause = repository.get_maintenance_or_none()
    if pause is None or not pause.is_on(now):
        return MaintenanceState(paused=False, pause=None)
    return MaintenanceState(paused=True, pause=MaintenanceOut.of(pause))


@router.get("/pause")
def read_pause(repository: RepositoryDep) -> MaintenanceState:
    """Whether a maintenance pause is on, since when, why, set by whom, until when."""
    return current_state(repository, datetime.now(UTC))


@router.post("/pause", status_code=201, responses={409: {"description": "Already paused"}})
def pause(body: PauseRequest, repository: RepositoryDep, user: Caller) -> MaintenanceState:
    """Pause every schedule: the sync keeps every deployment paused, each row's isActive
    stays as it is."""
    now = datetime.now(UTC)
    until = None if body.until is None else maintenance.parse_until(body.until, now)
    try:
        started = repository.start_maintenance(
            reason=maintenance.checked_reason(body.reason), set_by=user, until=until, now=now
        )
    except errors.AlreadyPaused as exc:
        raise HTTPException(409, str(exc)) from exc
    return MaintenanceState(paused=True, pause=MaintenanceOut.of(started))


@router.post("/resume")
def resume(repository: RepositoryDep, user: Caller) -> MaintenanceState:
    """End the pause: the active rows run again (each catching up once), the disabled
    ones stay paused. Without a pause on, nothing changes."""
    ended = repository.end_maintenance(ended_by=user, now=datetime.now(UTC))
    return MaintenanceState(paused=False, pause=None if ended is None else MaintenanceOut.of(ended))
