"""Failure alerts through Prefect: one automation per notification block that rows name.

A row's ``alertTo`` (or ``JOBCTL_ALERT_TO``) is the slug of a Prefect notification block,
``<block type>/<block name>`` (``custom-webhook/oncall``, ``slack-webhook/ops``). For each
block named by at least one row, the sync keeps two automations that send a notification
through the block for the runs of those rows' deployments (matched by their
``schedule:<id>`` tag): one on a run's ``Failed`` or ``TimedOut`` event, which Prefect
emits only for the last attempt (an attempt that will be retried goes AwaitingRetry, and
a run that succeeds on a retry ends Completed); one on a ``Crashed`` run that jobctl's
reconciler did not put back as AwaitingRetry in time (no retry left, or lost with its
worker). Exactly one alert per run that finally failed.

Reconciled like deployments: the automation's description carries a hash of its
configuration, so an unchanged resync writes nothing; an automation of ours (name prefix
and tags) that no row needs any more is deleted; automations made by users are never
touched. A row whose ``alertTo`` names no block is rejected with that reason, and the
sync keeps such targets in ``jobctl_alert_target_problem`` for the readers that do not ask
Prefect (``jobctl.alert_problems``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import Automation, AutomationCore, EventTrigger, Posture
from sqlalchemy import Text, cast, select

from jobctl import alert_problems
from jobctl.models import JobSchedule, utcnow
from jobctl.prefect.gateway import PrefectGateway
from jobctl.repository import Repository
from jobctl.settings import Settings

logger = logging.getLogger("jobctl.prefect.alerts")

MANAGED_TAG = "jobctl"
FAILED = "failed"
CRASHED = "crashed"
FINAL_FAILURE_EVENTS = frozenset({"prefect.flow-run.Failed", "prefect.flow-run.TimedOut"})
SUBJECT = "jobctl: {{ flow.name }} failed"
# Jinja, rendered by the Prefect server with the flow run, its flow and deployment.
BODY = """\
Job {{ flow.name }} ended {{ flow_run.state.name }} after its last attempt.
Schedule: {{ deployment.name | replace("schedule-", "") }} {{ deployment.description or "" }}
Attempt {{ flow_run.run_count }} of {{ (flow_run.empirical_policy.retries or 0) + 1 }}
Error: {{ ((flow_run.state.message or "") | trim).split("\\n")[0] }}
Flow run: {{ flow_run.name }} {{ flow_run | ui_url or "" }}
"""


def pool_tag(pool: str) -> str:
    return f"jobctl-pool:{pool}"


def automation_name(pool: str, slug: str, kind: str = FAILED) -> str:
    return f"jobctl:{pool}:alert:{slug}" + ("" if kind == FAILED else f":{kind}")


def crash_window_s(settings: Settings) -> float:
    """How long a Crashed run may wait for the reconciler to retry it (AwaitingRetry)
    before it counts as finally crashed: two reconcile rounds and some."""
    return 2 * settings.reconcile_interval_s + 10


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
        if slug := alert_problems.target_of(alert_to, default):
            targets[schedule_id] = slug
    return targets


def desired_automations(
    pool: str, slug: str, block_id: UUID, schedule_ids: Sequence[str], crash_window_s: float
) -> list[AutomationCore]:
    """The two automations of one block: a run's final Failed or TimedOut event at once;
    a Crashed run that the reconciler did not put back as AwaitingRetry within
    ``crash_window_s`` (crashed with no retry left, or lost with its worker)."""
    match = {"prefect.resource.id": "prefect.flow-run.*"}
    match_related: dict[str, str | list[str]] = {
        "prefect.resource.role": "tag",
        "prefect.resource.id": [f"prefect.tag.schedule:{sid}" for sid in sorted(schedule_ids)],
    }
    failed = EventTrigger(
        expect=set(FINAL_FAILURE_EVENTS),
        match=match,
        match_related=match_related,
        posture=Posture.Reactive,
        threshold=1,
        within=timedelta(0),
    )
    crashed = EventTrigger(
        after={"prefect.flow-run.Crashed"},
        expect={"prefect.flow-run.AwaitingRetry"},
        for_each={"prefect.resource.id"},
        match=match,
        match_related=match_related,
        posture=Posture.Proactive,
        threshold=1,
        within=timedelta(seconds=crash_window_s),
    )
    return [
        _automation(pool, slug, kind, trigger, block_id)
        for kind, trigger in ((FAILED, failed), (CRASHED, crashed))
    ]


def _automation(
    pool: str, slug: str, kind: str, trigger: EventTrigger, block_id: UUID
) -> AutomationCore:
    subject = SUBJECT if kind == FAILED else SUBJECT.replace("failed", "crashed")
    action = SendNotification(block_document_id=block_id, subject=subject, body=BODY)
    core = AutomationCore(
        name=automation_name(pool, slug, kind),
        description="",
        enabled=True,
        tags=[MANAGED_TAG, pool_tag(pool)],
        trigger=trigger,
        actions=[action],
    )
    content = core.model_dump(mode="json", exclude={"description"})
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    core.description = (
        f"{kind.capitalize()} runs of jobctl rows (pool {pool}) to {slug}; config {digest}"
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


async def block_ids(gateway: PrefectGateway, slugs: Sequence[str]) -> dict[str, UUID | str]:
    """Each slug's block document id, or why it names no block."""
    found: dict[str, UUID | str] = {}
    for slug in sorted(set(slugs)):
        parts = split_slug(slug)
        if parts is None:
            found[slug] = f"alertTo {slug!r} is not <block type>/<block name>"
            continue
        block_type, name = parts
        document_id = await gateway.block_document_id(block_type, name)
        if document_id is None:
            found[slug] = f"alertTo {slug!r} names no Prefect notification block"
            continue
        found[slug] = document_id
    return found


async def rejections(
    settings: Settings, repository: Repository, gateway: PrefectGateway
) -> dict[str, str]:
    """Rows whose alert target names no notification block, with the reason: for the
    deployments sync to reject (and pause) like any bad row."""
    targets = alert_targets(repository, settings.alert_to)
    blocks = await block_ids(gateway, list(targets.values()))
    return {
        schedule_id: reason
        for schedule_id, slug in targets.items()
        if isinstance(reason := blocks[slug], str)
    }


async def sync_alerts(
    settings: Settings, repository: Repository, gateway: PrefectGateway, *, dry_run: bool = False
) -> AlertReport:
    """Bring our automations in step with the rows' ``alertTo``; no write when in step."""
    targets = alert_targets(repository, settings.alert_to)
    blocks = await block_ids(gateway, list(targets.values()))
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
    window_s = crash_window_s(settings)
    desired = {
        core.name: core
        for slug, ids in rows_of.items()
        for core in desired_automations(settings.work_pool, slug, ids_of[slug], ids, window_s)
    }
    existing = await gateway.read_automations()
    plan = plan_alerts(desired, existing, settings.work_pool)
    if not dry_run:
        problems = {slug: block for slug, block in blocks.items() if isinstance(block, str)}
        alert_problems.replace(repository, problems, utcnow())
        for core in plan.create:
            await gateway.create_automation(core)
        for automation_id, core in plan.update:
            await gateway.update_automation(automation_id, core)
        for automation_id in plan.delete:
            await gateway.delete_automation(automation_id)
    return AlertReport(plan=plan, rejected=rejected)
