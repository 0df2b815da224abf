"""One validation of a schedule, shared by the CLI, the API and the sync."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from jobctl import registry
from jobctl.cron import is_time_zone, normalize_cron
from jobctl.errors import InvalidCron, InvalidParam, InvalidSchedule, Problem, shown
from jobctl.fields import SCHEDULE_FIELDS, Field
from jobctl.records import InvalidJson, ScheduleSpec

MAX_PARAM_BYTES = 64 * 1024
# Prefect refuses these in a deployment name, and a row's id is part of its deployment's name.
ID_BANNED_CHARACTERS = ("/", "%", "&", ">", "<", "\x00")
MAX_ID_CHARS = 200


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
        problem("jobName", f"{shown(spec.job_name)} is not a registered job")

    if spec.timezone is not None:
        if not isinstance(spec.timezone, str) or not is_time_zone(spec.timezone):
            problem("timezone", f"{shown(spec.timezone)} is not an IANA time zone")

    for field in SCHEDULE_FIELDS:
        value = getattr(spec, field.name)
        if field.kind is int and field.minimum is not None and field.maximum is not None:
            _check_int(problem, field, value)
        elif field.choices and value not in field.choices:
            problem(field.column, f"{shown(value)} is not one of {', '.join(field.choices)}")
    if not isinstance(spec.is_active, bool) and spec.is_active not in (0, 1):
        problem("isActive", f"must be true or false, not {shown(spec.is_active)}")
    if spec.description is not None and not isinstance(spec.description, str):
        problem("description", "must be text")
    if spec.alert_to is not None and not _is_block_slug(spec.alert_to):
        problem("alertTo", f"{shown(spec.alert_to)} is not <block type>/<block name>")

    for column, value in (
        ("cron", spec.cron),
        ("jobName", spec.job_name),
        ("timezone", spec.timezone),
        ("description", spec.description),
    ):
        if isinstance(value, str) and "\x00" in value:
            problem(column, "contains a NUL character")
    if isinstance(spec.param, InvalidJson):
        problem("param", f"is {spec.param.reason}: {spec.param.text[:60]!r}")
    else:
        try:
            encoded = json.dumps(spec.param, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            problem("param", f"is not JSON-serialisable: {str(exc)[:200]}")
        else:
            size = len(encoded.encode())
            if contains_nul(spec.param):
                problem("param", "contains a NUL character (\\u0000), which JSON columns refuse")
            elif size > MAX_PARAM_BYTES:
                problem("param", f"is {size} bytes of JSON; at most {MAX_PARAM_BYTES} allowed")
            elif isinstance(spec.job_name, str) and spec.job_name in known_jobs:
                misfit = _param_misfit(spec.job_name, spec.param)
                if misfit:
                    problem("param", misfit)
    return problems


def _is_block_slug(value: Any) -> bool:
    """A Prefect block's slug, ``custom-webhook/oncall``: whether it names an existing
    block is the sync's to check, against Prefect."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    block_type, _, name = value.partition("/")
    return bool(block_type) and bool(name) and "/" not in name and len(value) <= 200


def contains_nul(value: Any) -> bool:
    """Whether a JSON value holds a NUL character in any string or key, which PostgreSQL's
    jsonb (ours, or a Prefect server's) refuses. Iterative: JSON can nest deeply."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False


def _param_misfit(job_name: str, param: Any) -> str | None:
    """Why ``param`` does not fit the job's signature (every run would fail), or None.

    Checked as the flow run checks its parameters, so a row is refused exactly when its
    runs could not start. Names that are not registered here (tests pass made-up names)
    are not checked.
    """
    job = registry.load_jobs().get(job_name)
    if job is None:
        return None
    try:
        job.check_param(param)
    except InvalidParam as exc:
        first = exc.problems[0]
        return f"does not fit {job_name}'s parameter ({first.where[:50]}): {first.message[:150]}"
    return None


def id_problems(schedule_id: Any) -> list[Problem]:
    """Problems of a row's id: it names the row's deployment, and Prefect refuses some names.

    Plain SQL can store any text as an id; the original system stores UUIDs.
    """
    if not isinstance(schedule_id, str) or not schedule_id:
        return [Problem("id", f"must be non-empty text, not {shown(schedule_id)}")]
    if len(schedule_id) > MAX_ID_CHARS:
        return [Problem("id", f"is {len(schedule_id)} characters; at most {MAX_ID_CHARS}")]
    banned = sorted({c for c in ID_BANNED_CHARACTERS if c in schedule_id})
    if banned:
        return [Problem("id", f"contains {', '.join(map(repr, banned))}, which Prefect refuses")]
    return []


def _check_int(problem: Any, field: Field, value: Any) -> None:
    if value is None:
        return
    assert field.minimum is not None and field.maximum is not None
    if isinstance(value, bool) or not isinstance(value, int):
        problem(field.column, f"must be a whole number, not {shown(value)}")
    elif not field.minimum <= value <= field.maximum:
        suffix = f" {field.unit}" if field.unit else ""
        problem(
            field.column,
            f"must be between {field.minimum} and {field.maximum}{suffix}, not {shown(value)}",
        )


def validated(
    spec: ScheduleSpec, known_jobs: Collection[str], schedule_id: str | None = None
) -> ScheduleSpec:
    """``spec`` with its cron normalised, or ``InvalidSchedule`` listing every problem
    (those of ``schedule_id`` too, when given)."""
    problems = problems_of(spec, known_jobs)
    if schedule_id is not None:
        problems = id_problems(schedule_id) + problems
    if problems:
        raise InvalidSchedule(problems, schedule_id)
    return spec.replace(cron=normalize_cron(spec.cron), is_active=bool(spec.is_active))
