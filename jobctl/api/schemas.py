"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobctl.records import Attempt, Schedule

Json = Any
MAX_NAME = 200


class CallJobRequest(BaseModel):
    """The original system's body, plus ``wait``."""

    methodName: str = Field(max_length=10_000, description="A registered job's name.")
    param: Json = Field(default=None, description="The job's parameter (JSON).")
    wait: bool = Field(
        default=True,
        description="true: run in the API process and answer with the result; "
        "false: submit a run of the job's manual deployment to the workers (202).",
    )


class CallJobResponse(BaseModel):
    status: Literal["SUCCESS", "FAILED"]
    result: Json = None
    error: str | None = None
    flowRunId: str | None = None
    historyId: int | None = None


class SubmittedRun(BaseModel):
    status: Literal["SUBMITTED"] = "SUBMITTED"
    flowRunId: str
    deployment: str


class RunRequest(BaseModel):
    methodName: str = Field(max_length=10_000)
    param: Json = None


class ScheduleFields(BaseModel):
    """Every editable field, named as the table names them."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(default=None, max_length=200)
    jobName: str | None = Field(default=None, max_length=MAX_NAME)
    param: Json = None
    isActive: bool | None = None
    description: str | None = Field(default=None, max_length=10_000)
    priority: int | None = Field(default=None, ge=0, le=2**31 - 1)
    timeout: int | None = Field(default=None, ge=0, le=2**31 - 1, description="ms")
    maxRetries: int | None = Field(default=None, ge=0, le=100)
    timezone: str | None = Field(default=None, max_length=100)
    retryDelay: int | None = Field(default=None, ge=0, le=2**31 - 1, description="ms")
    retryBackoff: Literal["fixed", "exponential"] | None = None
    overlap: Literal["allow", "skip", "queue"] | None = None
    misfireGrace: int | None = Field(default=None, ge=0, le=2**31 - 1, description="ms")


class ScheduleCreate(ScheduleFields):
    cron: str = Field(max_length=200)
    jobName: str = Field(max_length=MAX_NAME)


class ScheduleOut(BaseModel):
    id: str
    cron: str
    jobName: str
    param: Json = None
    isActive: bool
    description: str | None
    priority: int | None
    timeout: int | None
    maxRetries: int | None
    timezone: str | None
    retryDelay: int | None
    retryBackoff: str
    overlap: str
    misfireGrace: int | None
    createdAt: datetime | None
    updatedAt: datetime | None

    @classmethod
    def of(cls, row: Schedule) -> ScheduleOut:
        return cls(
            id=row.id,
            cron=str(row.cron),
            jobName=str(row.job_name),
            param=row.param,
            isActive=bool(row.is_active),
            description=row.description,
            priority=row.priority,
            timeout=row.timeout_ms,
            maxRetries=row.max_retries,
            timezone=row.timezone,
            retryDelay=row.retry_delay_ms,
            retryBackoff=str(row.retry_backoff),
            overlap=str(row.overlap),
            misfireGrace=row.misfire_grace_ms,
            createdAt=row.created_at,
            updatedAt=row.updated_at,
        )


class AttemptOut(BaseModel):
    id: int
    jobName: str
    param: Json = None
    status: Literal["PROCESSING", "SUCCESS", "FAILED"]
    error: str | None
    startAt: datetime
    endAt: datetime | None
    scheduleId: str | None
    flowRunId: str | None
    attempt: int | None
    peakMemoryBytes: int | None

    @classmethod
    def of(cls, row: Attempt) -> AttemptOut:
        return cls(
            id=row.id,
            jobName=row.job_name,
            param=row.param,
            status=row.status.value,
            error=row.error,
            startAt=row.start_at,
            endAt=row.end_at,
            scheduleId=row.schedule_id,
            flowRunId=row.flow_run_id,
            attempt=row.attempt,
            peakMemoryBytes=row.peak_memory_bytes,
        )


class Health(BaseModel):
    database: str
    prefect: str


class ErrorOut(BaseModel):
    detail: Json
