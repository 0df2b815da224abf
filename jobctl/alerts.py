"""Failure alerts through Prefect: one automation per notification block that rows name.

A row's ``alertTo`` (or ``JOBCTL_ALERT_TO``) is the slug of a Prefect notification block,
``<block type>/<block name>`` (``custom-webhook/oncall``, ``slack-webhook/ops``). For each
block named by at least one row, the sync keeps one automation: on a flow run's final
``Failed`` (retries exhausted) or ``TimedOut`` event of one of those rows' deployments
(matched by their ``schedule:<id>`` tag), send a notification through the block. Prefect
emits no such event for an attempt that will be retried (that one goes AwaitingRetry),
nor for a run that succeeds on a retry: exactly one alert per run that finally failed.

Reconciled like deployments: the automation's description carries a hash of its
configuration, so an unchanged resync writes nothing; an automation of ours (name prefix
and tags) that no row needs any more is deleted; automations made by users are never
touched. A row whose ``alertTo`` names no block is rejected with that reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import Automation, AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectNotFound
from sqlalchemy import Text, cast, select

from jobctl.models import JobSchedule
from jobctl.repository import Repository
from jobctl.settings import Settings

logger = logging.getLogger("jobctl.alerts")

MANAGED_TAG = "jobctl"
FINAL_FAILURE_EVENTS = frozenset({"prefect.flow-run.Failed", "prefect.flow-run.TimedOut"})
SUBJECT = "jobctl: {{ flow.name }} failed"
# Jinja, rendered by the Prefect server with the flow run, its flow and deployment.
BODY = """\
Job {{ flow.name }} failed after its last attempt.
Schedule: {{ deployment.name | replace("schedule-", "") }} {{ deployment.description or "" }}
Attempt {{ flow_run.run_count }} of {{ (flow_run.empirical_policy.retries or 0) + 1 }}
Error: {{ ((flow_run.state.message or "") | trim).split("\\n")[0] }}
Flow run: {{ flow_run.name }} {{ flow_run | ui_url or "" }}
"""


def pool_tag(pool: str) -> str:
    return f"jobctl-pool:{pool}"


def automation_name(pool: str, slug: str) -> str:
    return f"jobctl:{pool}:alert:{slug}"


def split_slug(slug: str) -> tuple[str, str] | None:
    """``("custom-webhook", "oncall")`` of ``custom-webhook/oncall``; None if malformed."""
    block_type, _, name = slug.partition("/")
    if not block_type or not name or "/" in name:
        return None
    return block_type, name


def alert_targets(repository: Repository, default: str | None) -> dict[str, str]:
    """Where each row's alerts go: schedule id -> block slug (rows without one left out)."""
    statement = select(cast(JobSchedule.id, Text), JobSchedule.alertTo)
    with repository.session() as session:
        rows = list(session.execute(statement))
    targets: dict[str, str] = {}
    for schedule_id, alert_to in rows:
        slug = alert_to if alert_to not in (None, "") else default
        if slug:
            targets[schedule_id] = str(slug)
    return targets


def desired_automation(
    pool: str, slug: str, block_id: UUID, schedule_ids: Sequence[str]
) -> AutomationCore:
    trigger = EventTrigger(
        expect=set(FINAL_FAILURE_EVENTS),
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related={
            "prefect.resource.role": "tag",
            "prefect.resource.id": [f"prefect.tag.schedule:{sid}" for sid in sorted(schedule_ids)],
        },
        posture=Posture.Reactive,
        threshold=1,
        within=timedelta(0),
    )
    action = SendNotification(block_document_id=block_id, subject=SUBJECT, body=BODY)
    core = AutomationCore(
        name=automation_name(pool, slug),
        description="",
        enabled=True,
        tags=[MANAGED_TAG, pool_tag(pool)],
        trigger=trigger,
        actions=[action],
    )
    content = core.model_dump(mode="json", exclude={"description"})
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    core.description = (
        f"Failure alerts of jobctl rows (pool {pool}) through {slug}; config {digest}"
    )
    return core


def is_ours(automation: Automation, pool: str) -> bool:
    return automation.name.startswith(automation_name(pool, "")) and {
        MANAGED_TAG,
        pool_tag(pool),
    } <= set(automation.tags)


@dataclass(frozen=True)
class AlertPlan:
    create: list[AutomationCore] = field(default_factory=list)
    update: list[tuple[UUID, AutomationCore]] = field(default_factory=list)
    delete: list[UUID] = field(default_factory=list)
    unchanged: int = 0

    @property
    def writes(self) -> int:
        return len(self.create) + len(self.update) + len(self.delete)


def plan_alerts(
    desired: Mapping[str, AutomationCore], existing: Sequence[Automation], pool: str
) -> AlertPlan:
    """What to create, update and delete so that our automations are ``desired`` (by name).
    A duplicate of ours (two syncs at once) is deleted; others' automations are left alone."""
    plan = AlertPlan()
    seen: set[str] = set()
    unchanged = 0
    for automation in sorted(existing, key=lambda a: str(a.id)):
        if not is_ours(automation, pool):
            continue
        wanted = desired.get(automation.name)
        if wanted is None or automation.name in seen:
            plan.delete.append(automation.id)
            continue
        seen.add(automation.name)
        if automation.description == wanted.description and automation.enabled:
            unchanged += 1
        else:
            plan.update.append((automation.id, wanted))
    plan.create.extend(core for name, core in desired.items() if name not in seen)
    return AlertPlan(plan.create, plan.update, plan.delete, unchanged)


@dataclass(frozen=True)
class AlertReport:
    plan: AlertPlan
    rejected: dict[str, str]  # schedule id -> reason

    def summary(self) -> str:
        plan = self.plan
        return (
            f"alerts: {len(plan.create)} create, {len(plan.update)} update, "
            f"{len(plan.delete)} delete, {plan.unchanged} unchanged, "
            f"{len(self.rejected)} row(s) rejected"
        )


async def block_ids(client: PrefectClient, slugs: Sequence[str]) -> dict[str, UUID | str]:
    """Each slug's block document id, or why it names no block."""
    found: dict[str, UUID | str] = {}
    for slug in sorted(set(slugs)):
        parts = split_slug(slug)
        if parts is None:
            found[slug] = f"alertTo {slug!r} is not <block type>/<block name>"
            continue
        block_type, name = parts
        try:
            document = await client.read_block_document_by_name(name, block_type)
        except ObjectNotFound:
            found[slug] = f"alertTo {slug!r} names no Prefect notification block"
            continue
        found[slug] = document.id
    return found


async def sync_alerts(
    settings: Settings, repository: Repository, client: PrefectClient, *, dry_run: bool = False
) -> AlertReport:
    """Bring our automations in step with the rows' ``alertTo``; no write when in step."""
    targets = alert_targets(repository, settings.alert_to)
    blocks = await block_ids(client, list(targets.values()))
    rejected: dict[str, str] = {}
    rows_of: dict[str, list[str]] = {}
    ids_of: dict[str, UUID] = {}
    for schedule_id, slug in targets.items():
        block = blocks[slug]
        if isinstance(block, str):
            rejected[schedule_id] = block
            logger.warning("schedule %s rejected: %s", schedule_id, block)
            continue
        ids_of[slug] = block
        rows_of.setdefault(slug, []).append(schedule_id)
    desired = {
        automation_name(settings.work_pool, slug): desired_automation(
            settings.work_pool, slug, ids_of[slug], ids
        )
        for slug, ids in rows_of.items()
    }
    existing = await client.read_automations()
    plan = plan_alerts(desired, existing, settings.work_pool)
    if not dry_run:
        for core in plan.create:
            await client.create_automation(core)
        for automation_id, core in plan.update:
            await client.update_automation(automation_id, core)
        for automation_id in plan.delete:
            await client.delete_automation(automation_id)
    return AlertReport(plan=plan, rejected=rejected)
