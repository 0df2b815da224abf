"""The pure mapping from a JobSchedule row to the Prefect deployment that mirrors it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from jobctl import cron as cron_rules  # `cron` is a field name here
from jobctl import policy as run_policy
from jobctl.records import Schedule

MANAGED_TAG = "jobctl"
SCHEDULE_TAG_PREFIX = "schedule:"
JOB_TAG_PREFIX = "job:"
QUEUE_PREFIX = "priority-"
# Flow processes send a heartbeat this often (30 s is Prefect's minimum); the zombie
# automation marks Crashed a run that missed several.
HEARTBEAT_S = 30
HEARTBEAT_ENV = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"


def deployment_name(schedule_id: str) -> str:
    """Derived from the row id only, so it is stable across every edit of the row."""
    return f"schedule-{schedule_id}"


def queue_name(priority: int | None) -> str:
    return f"{QUEUE_PREFIX}{priority or 0}"


def schedule_id_of(tags: list[str]) -> str | None:
    for tag in tags:
        if tag.startswith(SCHEDULE_TAG_PREFIX):
            return tag.removeprefix(SCHEDULE_TAG_PREFIX)
    return None


@dataclass(frozen=True)
class DeploymentSpec:
    schedule_id: str
    name: str
    flow_name: str
    entrypoint: str
    cron: str
    timezone: str
    parameters: dict[str, Any]
    work_pool_name: str
    work_queue_name: str
    priority: int
    tags: list[str]
    description: str | None
    paused: bool
    job_variables: dict[str, Any]
    concurrency_limit: int | None
    collision_strategy: str | None
    # The row's cron as one UTC schedule, when that names the same instants through DST
    # changes (``jobctl.cron.utc_equivalent``): Prefect gets it instead of cron and zone.
    utc_cron: str | None = None
    # Extra schedules for the second pass of the next repeated hours (fall-backs), told
    # apart by slug: left out of the hash, so that adding next year's does not rewrite the
    # deployment (which would delete its future runs).
    repeats: tuple[cron_rules.RepeatSchedule, ...] = ()
    version: str = field(default="", compare=False)

    @property
    def main_schedule(self) -> tuple[str, str]:
        """The cron and the zone of the deployment's main schedule."""
        return (self.utc_cron, "UTC") if self.utc_cron is not None else (self.cron, self.timezone)

    @property
    def repeat_slugs(self) -> frozenset[str]:
        return frozenset(r.slug for r in self.repeats)

    def config_hash(self) -> str:
        """A hash of everything but ``paused``, which is changed with a call of its own,
        and ``repeats``, which the plan compares by slug."""
        # Not dataclasses.asdict: its deep copy was most of a 10,000-row plan's time.
        content = {f.name: getattr(self, f.name) for f in fields(self)}
        del content["paused"], content["version"], content["repeats"]
        if content["utc_cron"] is None:  # the hashes of deployments made before it stay
            del content["utc_cron"]
        canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# Overlap policy -> deployment concurrency (limit, collision strategy).
OVERLAP_CONCURRENCY: dict[str, tuple[int | None, str | None]] = {
    "allow": (None, None),
    "skip": (1, "CANCEL_NEW"),
    "queue": (1, "ENQUEUE"),
}


def spec_for(
    row: Schedule,
    *,
    entrypoint: str,
    work_pool_name: str,
    default_timezone: str,
    default_retry_delay_ms: int,
    default_misfire_grace_ms: int,
    now: datetime,
) -> DeploymentSpec:
    """The deployment of a validated row (its cron already normalised) at ``now``, which
    decides which fall-backs the repeat schedules cover."""
    policy = run_policy.from_row(
        max_retries=row.max_retries,
        retry_delay_ms=row.retry_delay_ms,
        retry_backoff=row.retry_backoff,
        timeout_ms=row.timeout_ms,
        misfire_grace_ms=row.misfire_grace_ms,
        default_retry_delay_ms=default_retry_delay_ms,
        default_misfire_grace_ms=default_misfire_grace_ms,
    )
    limit, strategy = OVERLAP_CONCURRENCY[row.overlap]
    timezone = row.timezone or default_timezone
    spec = DeploymentSpec(
        schedule_id=row.id,
        name=deployment_name(row.id),
        flow_name=row.job_name,
        entrypoint=entrypoint,
        cron=row.cron,
        timezone=timezone,
        parameters={"param": row.param},
        work_pool_name=work_pool_name,
        work_queue_name=queue_name(row.priority),
        priority=row.priority or 0,
        tags=[MANAGED_TAG, f"{JOB_TAG_PREFIX}{row.job_name}", f"{SCHEDULE_TAG_PREFIX}{row.id}"],
        description=row.description,
        paused=not row.is_active,
        job_variables={
            "env": {
                run_policy.POLICY_ENV: policy.to_env(),
                run_policy.SCHEDULE_ID_ENV: row.id,
                HEARTBEAT_ENV: str(HEARTBEAT_S),
            }
        },
        concurrency_limit=limit,
        collision_strategy=strategy,
        utc_cron=cron_rules.utc_equivalent(row.cron, timezone, now),
        repeats=cron_rules.repeat_schedules(row.cron, timezone, now),
    )
    return replace(spec, version=spec.config_hash())
