"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobctl import registry, validation
from jobctl.fields import FIELD_OF_COLUMN, SCHEDULE_FIELDS
from jobctl.maintenance import Maintenance
from jobctl.records import Attempt, InvalidJson, Schedule

BY_COLUMN = {field.column: field for field in SCHEDULE_FIELDS}

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


def _from_table(column: str, default: Any = None) -> Any:
    """A body field's limits, unit and help, from ``jobctl.fields``."""
    field = BY_COLUMN[column]
    return Field(
        default=default,
        ge=field.minimum,
        le=field.maximum,
        max_length=field.max_length,
        description=field.help,
    )


class ScheduleFields(BaseModel):
    """Every editable field, named as the table names them (limits from jobctl.fields)."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = _from_table("cron")
    jobName: str | None = _from_table("jobName")
    param: Json = _from_table("param")
    isActive: bool | None = _from_table("isActive")
    description: str | None = _from_table("description")
    priority: int | None = _from_table("priority")
    timeout: int | None = _from_table("timeout")
    maxRetries: int | None = _from_table("maxRetries")
    timezone: str | None = _from_table("timezone")
    retryDelay: int | None = _from_table("retryDelay")
    retryBackoff: Literal["fixed", "exponential"] | None = _from_table("retryBackoff")
    overlap: Literal["allow", "skip", "queue"] | None = _from_table("overlap")
    misfireGrace: int | None = _from_table("misfireGrace")
    alertTo: str | None = _from_table("alertTo")

    def spec_changes(self, *, include_defaults: bool) -> dict[str, Any]:
        """The fields sent (or, with ``include_defaults``, every non-null one) by their
        Python names, as ``ScheduleSpec`` takes them."""
        values = self.model_dump(exclude_unset=not include_defaults, exclude_none=include_defaults)
        return {FIELD_OF_COLUMN[column]: value for column, value in values.items()}


class ScheduleCreate(ScheduleFields):
    cron: str = _from_table("cron", default=...)
    jobName: str = _from_table("jobName", default=...)


class ScheduleOut(BaseModel):
    """A row as stored. A row plain SQL made bad is listed too, with its ``problems``; a
    value that does not fit its field's type (text in ``priority`` on SQLite) is null."""

    id: str
    cron: str | None
    jobName: str | None
    param: Json = None
    isActive: bool | None
    description: str | None
    priority: int | None
    timeout: int | None
    maxRetries: int | None
    timezone: str | None
    retryDelay: int | None
    retryBackoff: str | None
    overlap: str | None
    misfireGrace: int | None
    alertTo: str | None = None
    createdAt: datetime | None
    updatedAt: datetime | None
    problems: list[str] = Field(
        default_factory=list,
        description="Why the sync rejects this row (field: reason); empty for a good row.",
    )

    @classmethod
    def of(cls, row: Schedule) -> ScheduleOut:
        values: dict[str, Any] = {
            "id": row.id,
            **{field.column: getattr(row, field.name) for field in SCHEDULE_FIELDS},
            "createdAt": row.created_at,
            "updatedAt": row.updated_at,
        }
        if isinstance(values["param"], InvalidJson):
            values["param"] = None
        found = validation.id_problems(row.id) + validation.problems_of(row, registry.job_names())
        problems = [str(problem) for problem in found]
        try:
            return cls.model_validate({**values, "problems": problems})
        except ValidationError as exc:
            unfit = {str(error["loc"][0]) for error in exc.errors()}
        named = {problem.field for problem in found}
        problems += [
            f"{column}: stored value does not fit its type" for column in sorted(unfit - named)
        ]
        fitted = {column: None if column in unfit else value for column, value in values.items()}
        return cls.model_validate({**fitted, "problems": problems})


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
    # ``backfill <from>/<to>`` for a run a backfill created; null otherwise.
    origin: str | None = None

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
            origin=row.origin,
        )


class MaintenanceOut(BaseModel):
    """A maintenance pause (``jobctl pause --all``)."""

    reason: str
    setBy: str
    since: datetime
    until: datetime | None
    endedAt: datetime | None
    endedBy: str | None

    @classmethod
    def of(cls, pause: Maintenance) -> MaintenanceOut:
        return cls(
            reason=pause.reason,
            setBy=pause.set_by,
            since=pause.started_at,
            until=pause.until,
            endedAt=pause.ended_at,
            endedBy=pause.ended_by,
        )


class Health(BaseModel):
    database: str
    prefect: str
    # Present while a maintenance pause is on (every schedule paused on purpose).
    maintenance: MaintenanceOut | None = None


class ErrorOut(BaseModel):
    detail: Json
