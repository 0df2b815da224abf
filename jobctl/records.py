"""Frozen values that carry rows out of a database session."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobctl.models import JobStatus


@dataclass(frozen=True)
class InvalidJson:
    """A ``param`` value stored as text that does not parse as JSON (plain SQL can do that),
    or JSON nested too deeply to decode."""

    text: str
    reason: str = "not valid JSON"


@dataclass(frozen=True, kw_only=True)
class ScheduleSpec:
    """The editable fields of a JobSchedule row, in Python names with their units."""

    cron: Any
    job_name: Any
    param: Any = None
    is_active: Any = True
    description: Any = None
    priority: Any = None
    timeout_ms: Any = None
    max_retries: Any = None
    timezone: Any = None
    retry_delay_ms: Any = None
    retry_backoff: Any = "fixed"
    overlap: Any = "allow"
    misfire_grace_ms: Any = None
    alert_to: Any = None

    def replace(self, **changes: Any) -> ScheduleSpec:
        return dataclasses.replace(self, **changes)

    def spec(self) -> ScheduleSpec:
        """Only the editable fields (drops the identity of a ``Schedule``)."""
        return ScheduleSpec(
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(ScheduleSpec)}
        )


# Fields are typed Any on purpose: rows written by plain SQL may hold anything, and
# validation (not the type checker) is what tells a good row from a bad one.
@dataclass(frozen=True, kw_only=True)
class Schedule(ScheduleSpec):
    id: str
    created_at: datetime | None = None
    updated_at: datetime | None = None


SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(ScheduleSpec))


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One JobHistory row: one attempt of one flow run (or one run of the original system)."""

    id: int
    job_name: str
    param: Any
    status: JobStatus
    error: str | None
    start_at: datetime
    end_at: datetime | None
    schedule_id: str | None = None
    flow_run_id: str | None = None
    attempt: int | None = None
    peak_memory_bytes: int | None = None
    # What created the run when it was not the row's schedule: a backfill and its range.
    origin: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.end_at is None:
            return None
        return (self.end_at - self.start_at).total_seconds()


@dataclass(frozen=True, kw_only=True)
class HistoryFilter:
    job_name: str | None = None
    status: JobStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    schedule_id: str | None = None
    flow_run_id: str | None = None
    limit: int = 50
    offset: int = 0
