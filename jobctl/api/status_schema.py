"""The JSON of a schedule's status: ``GET /v1/job/status`` and ``jobctl status --json``."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from jobctl import status


class LastRunOut(BaseModel):
    historyId: int
    startAt: datetime
    status: str
    attempt: int | None
    durationSeconds: float | None
    error: str | None  # its first line


class StatusOut(BaseModel):
    scheduleId: str
    jobName: str
    cron: str
    timezone: str
    description: str | None
    state: str  # active | paused | rejected | missed
    reason: str | None
    lastRun: LastRunOut | None
    lastSuccessAt: datetime | None
    nextFireAt: datetime | None

    @classmethod
    def of(cls, line: status.ScheduleStatus) -> StatusOut:
        last = line.last
        return cls(
            scheduleId=line.schedule_id,
            jobName=line.job_name,
            cron=line.cron,
            timezone=line.timezone,
            description=line.description,
            state=line.state,
            reason=line.reason,
            lastRun=None
            if last is None
            else LastRunOut(
                historyId=last.history_id,
                startAt=last.start_at,
                status=last.status.value,
                attempt=last.attempt,
                durationSeconds=last.duration_s,
                error=last.error.splitlines()[0] if last.error else None,
            ),
            lastSuccessAt=line.last_success_at,
            # In UTC, as every other time of the API (computed in the row's zone).
            nextFireAt=None if line.next_fire_at is None else line.next_fire_at.astimezone(UTC),
        )
