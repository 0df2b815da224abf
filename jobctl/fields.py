"""What each editable JobSchedule field is: its column, its limits, its unit and its help.

The one table the repository (column names), validation (limits and choices), the HTTP
API (request and response bodies), and the command line (options and help) read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_INT32 = 2**31 - 1
RETRY_BACKOFFS = ("fixed", "exponential")
OVERLAP_POLICIES = ("allow", "skip", "queue")


@dataclass(frozen=True)
class Field:
    name: str  # the Python name, in records.ScheduleSpec
    column: str  # the column, as the original (Prisma) schema names it
    kind: type[Any]  # str, int, bool, or object for any JSON value
    help: str
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    choices: tuple[str, ...] = ()
    unit: str | None = None  # "ms"
    required: bool = False  # must be given when a row is added

    @property
    def option(self) -> str:
        """The command-line option: ``--max-retries`` for ``maxRetries``, units dropped."""
        words = self.name.removesuffix(f"_{self.unit}") if self.unit else self.name
        return "--" + {"job_name": "job"}.get(words, words).replace("_", "-")


SCHEDULE_FIELDS = (
    Field("cron", "cron", str, "Five fields or @daily etc.", max_length=200, required=True),
    Field("job_name", "jobName", str, "A registered job.", max_length=200, required=True),
    Field("param", "param", object, "JSON value the job receives."),
    Field("is_active", "isActive", bool, "Whether the row runs (false: paused)."),
    Field("description", "description", str, "Free text.", max_length=10_000),
    Field("priority", "priority", int, "Lower runs first; 0 is the highest.", 0, MAX_INT32),
    Field("timeout_ms", "timeout", int, "Milliseconds; 0 = none.", 0, MAX_INT32, unit="ms"),
    Field("max_retries", "maxRetries", int, "Retries after the first attempt.", 0, 100),
    Field(
        "timezone",
        "timezone",
        str,
        "IANA zone of the cron [default: JOBCTL_TIMEZONE].",
        max_length=100,
    ),
    Field(
        "retry_delay_ms",
        "retryDelay",
        int,
        "Milliseconds between attempts [default: JOBCTL_RETRY_DELAY_MS].",
        0,
        MAX_INT32,
        unit="ms",
    ),
    Field(
        "retry_backoff",
        "retryBackoff",
        str,
        "fixed, or exponential (the delay doubles after each attempt).",
        choices=RETRY_BACKOFFS,
    ),
    Field(
        "overlap",
        "overlap",
        str,
        "allow runs at once, skip a run due while one runs, or queue it.",
        choices=OVERLAP_POLICIES,
    ),
    Field(
        "misfire_grace_ms",
        "misfireGrace",
        int,
        "Milliseconds a scheduled run may start late; a later one is skipped unless it is "
        "the row's most recent due run [default: JOBCTL_MISFIRE_GRACE_MS].",
        0,
        MAX_INT32,
        unit="ms",
    ),
    Field(
        "alert_to",
        "alertTo",
        str,
        "The Prefect notification block (type/name) that gets this row's alerts "
        "[default: JOBCTL_ALERT_TO].",
        max_length=200,
    ),
)
BY_NAME = {field.name: field for field in SCHEDULE_FIELDS}
COLUMN_OF_FIELD = {field.name: field.column for field in SCHEDULE_FIELDS}
FIELD_OF_COLUMN = {field.column: field.name for field in SCHEDULE_FIELDS}
