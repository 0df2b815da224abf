"""What the sync sends Prefect: a deployment's arguments and the zombie automation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.objects import (
    ConcurrencyLimitStrategy,
    ConcurrencyOptions,
    StateType,
)
from prefect.client.schemas.schedules import CronSchedule, RRuleSchedule
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

from deployments.spec import HEARTBEAT_S, DeploymentSpec
from jobctl import cron

ZOMBIE_AUTOMATION = "jobctl: crash zombie flow runs"
ZOMBIE_MISSED_HEARTBEATS = 2


def zombie_automation() -> AutomationCore:
    silent_s = HEARTBEAT_S * ZOMBIE_MISSED_HEARTBEATS
    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description="jobctl: mark Crashed a flow run that stopped sending heartbeats",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat", "prefect.flow-run.Running"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=silent_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {silent_s} s: its process is gone",
            )
        ],
    )


def repeat_schedules(
    repeats: tuple[cron.RepeatSchedule, ...],
) -> list[DeploymentScheduleCreate]:
    return [
        DeploymentScheduleCreate(
            schedule=RRuleSchedule(rrule=r.rrule, timezone="UTC"), active=True, slug=r.slug
        )
        for r in repeats
    ]


def deployment_arguments(
    spec: DeploymentSpec, flow_id: UUID, parameter_schema: dict[str, Any] | None
) -> dict[str, Any]:
    """The arguments of ``create_deployment`` for ``spec``: the payload the sync sends."""
    options = None
    if spec.collision_strategy is not None:
        options = ConcurrencyOptions(
            collision_strategy=ConcurrencyLimitStrategy(spec.collision_strategy)
        )
    main_cron, main_zone = spec.main_schedule
    return {
        "flow_id": flow_id,
        "name": spec.name,
        "version": spec.version,
        "schedules": [
            DeploymentScheduleCreate(
                schedule=CronSchedule(cron=main_cron, timezone=main_zone), active=True
            ),
            *repeat_schedules(spec.repeats),
        ],
        "concurrency_limit": spec.concurrency_limit,
        "concurrency_options": options,
        "parameters": spec.parameters,
        # Prefect's client turns None into the text "None": no description is "".
        "description": spec.description or "",
        "work_pool_name": spec.work_pool_name,
        "work_queue_name": spec.work_queue_name,
        "tags": spec.tags,
        "entrypoint": spec.entrypoint,
        "parameter_openapi_schema": parameter_schema,
        "enforce_parameter_schema": False,
        "paused": spec.paused,
        "job_variables": spec.job_variables,
    }
