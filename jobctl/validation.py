"""One validation of a schedule, shared by the CLI, the API and the sync."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from jobctl.cron import InvalidCron, is_time_zone, normalize_cron
from jobctl.errors import InvalidSchedule, Problem
from jobctl.records import OVERLAP_POLICIES, RETRY_BACKOFFS, InvalidJson, ScheduleSpec

MAX_PARAM_BYTES = 64 * 1024
MAX_RETRIES = 100
MAX_INT32 = 2**31 - 1


def problems_of(spec: ScheduleSpec, known_jobs: Collection[str]) -> list[Problem]:
    """Every problem of ``spec``, each naming its field; empty when the row is good."""
    problems: list[Problem] = []

    def problem(field: str, message: str) -> None:
        problems.append(Problem(field, message))

    if not isinstance(spec.cron, str):
        problem("cron", f"must be text, not {type(spec.cron).__name__}")
    else:
        try:
            normalize_cron(spec.cron)
        except InvalidCron as exc:
            problem("cron", str(exc))

    if not isinstance(spec.job_name, str) or spec.job_name not in known_jobs:
        shown = spec.job_name if isinstance(spec.job_name, str) else repr(spec.job_name)
        problem("jobName", f"{str(shown)[:100]!r} is not a registered job")

    if spec.timezone is not None:
        if not isinstance(spec.timezone, str) or not is_time_zone(spec.timezone):
            problem("timezone", f"{str(spec.timezone)[:100]!r} is not an IANA time zone")

    _check_int(problem, "timeout", spec.timeout_ms, minimum=0, unit="ms")
    _check_int(problem, "maxRetries", spec.max_retries, minimum=0, maximum=MAX_RETRIES)
    _check_int(problem, "priority", spec.priority, minimum=0)
    _check_int(problem, "retryDelay", spec.retry_delay_ms, minimum=0, unit="ms")
    _check_int(problem, "misfireGrace", spec.misfire_grace_ms, minimum=0, unit="ms")

    if spec.retry_backoff not in RETRY_BACKOFFS:
        problem("retryBackoff", f"{spec.retry_backoff!r} is not one of {', '.join(RETRY_BACKOFFS)}")
    if spec.overlap not in OVERLAP_POLICIES:
        problem("overlap", f"{spec.overlap!r} is not one of {', '.join(OVERLAP_POLICIES)}")
    if not isinstance(spec.is_active, bool) and spec.is_active not in (0, 1):
        problem("isActive", f"must be true or false, not {spec.is_active!r}")
    if spec.description is not None and not isinstance(spec.description, str):
        problem("description", "must be text")

    for field, value in (
        ("cron", spec.cron),
        ("jobName", spec.job_name),
        ("timezone", spec.timezone),
        ("description", spec.description),
    ):
        if isinstance(value, str) and "\x00" in value:
            problem(field, "contains a NUL character")
    if isinstance(spec.param, InvalidJson):
        problem("param", f"is not valid JSON: {spec.param.text[:60]!r}")
    else:
        try:
            size = len(json.dumps(spec.param, allow_nan=False).encode())
        except (TypeError, ValueError) as exc:
            problem("param", f"is not JSON-serialisable: {exc}")
        else:
            if "\\u0000" in json.dumps(spec.param):
                problem("param", "contains a NUL character (\\u0000), which JSON columns refuse")
            if size > MAX_PARAM_BYTES:
                problem("param", f"is {size} bytes of JSON; at most {MAX_PARAM_BYTES} allowed")
    return problems


def _check_int(
    problem: Any,
    field: str,
    value: Any,
    *,
    minimum: int,
    maximum: int = MAX_INT32,
    unit: str = "",
) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        problem(field, f"must be a whole number, not {value!r}"[:200])
    elif not minimum <= value <= maximum:
        suffix = f" {unit}" if unit else ""
        problem(field, f"must be between {minimum} and {maximum}{suffix}, not {value}")


def validated(
    spec: ScheduleSpec, known_jobs: Collection[str], schedule_id: str | None = None
) -> ScheduleSpec:
    """``spec`` with its cron normalised, or ``InvalidSchedule`` listing every problem."""
    problems = problems_of(spec, known_jobs)
    if problems:
        raise InvalidSchedule(problems, schedule_id)
    return spec.replace(cron=normalize_cron(spec.cron), is_active=bool(spec.is_active))
