"""Every error jobctl raises on purpose; the docstring is the default message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A message quotes a bad value up to this many characters, never all of it.
SHOWN_CHARS = 100


class JobctlError(Exception):
    """jobctl failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class DatabaseUnavailable(JobctlError):
    """The jobctl database cannot be reached."""


class DatabaseError(JobctlError):
    """The database refused the query."""


class IncompatibleDatabase(JobctlError):
    """This database cannot be upgraded without rewriting its data."""


class MigrationsPending(JobctlError):
    """The database schema is not current: run `jobctl db upgrade`."""


class InvalidCron(JobctlError, ValueError):
    """The cron expression is invalid."""


class InvalidInput(JobctlError):
    """The database refused a value (a NUL character in text, say)."""


class ManualDeploymentMissing(JobctlError):
    """The job's manual deployment does not exist yet: run `jobctl sync`."""


class ScheduleNotFound(JobctlError):
    """No JobSchedule row has that id."""


class HistoryNotFound(JobctlError):
    """No JobHistory row has that id."""


class BackfillRefused(JobctlError):
    """The backfill was refused: a bad range, too many fire times, or a row that cannot run."""


class UnknownJob(JobctlError):
    """No job is registered under that name."""


class AlreadyRunning(JobctlError):
    """jobctl up is already running here."""


class PrefectUnavailable(JobctlError):
    """The Prefect API cannot be reached."""


class PrefectRefused(JobctlError):
    """Prefect refused the change."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one field of a schedule."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidSchedule(JobctlError):
    """The schedule is invalid."""

    def __init__(self, problems: list[Problem], schedule_id: str | None = None) -> None:
        self.problems = problems
        self.schedule_id = schedule_id
        where = f"invalid schedule {schedule_id}: " if schedule_id else "invalid schedule: "
        super().__init__(where + "; ".join(str(p) for p in problems))


class InvalidSchedulesFile(JobctlError):
    """The schedules file is invalid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid schedules file: " + "; ".join(problems))


@dataclass(frozen=True)
class ParamProblem:
    """One way a param does not fit its job: where in the param, and why."""

    location: tuple[str | int, ...]
    message: str
    kind: str

    def __str__(self) -> str:
        return f"{self.where[:50]}: {self.message[:150]}"

    @property
    def where(self) -> str:
        return ".".join(str(part) for part in self.location) or "value"


class InvalidParam(JobctlError):
    """The param does not fit the job's parameter."""

    def __init__(self, job_name: str, problems: list[ParamProblem]) -> None:
        self.job_name = job_name
        self.problems = problems
        first = problems[0] if problems else "no detail"
        super().__init__(f"param does not fit {job_name}'s parameter ({first})")


class InvalidSetting(JobctlError):
    """A JOBCTL_ setting is invalid."""


class AlreadyPaused(JobctlError):
    """A maintenance pause is already on: resume it first."""


def shown(value: Any) -> str:
    """``value``'s repr, cut to ``SHOWN_CHARS``: a message quotes a bad value, never all of it."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"a {value.bit_length()}-bit number"  # repr() refuses over 4300 digits
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        value = value[:SHOWN_CHARS] + "…"
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int of over 4300 digits deep inside
        return f"a {type(value).__name__}"
    return text if len(text) <= SHOWN_CHARS + 2 else text[:SHOWN_CHARS] + "…"
