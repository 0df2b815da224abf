"""One sync: read the rows, plan against Prefect, apply the plan with the fewest calls.

The CLI (`jobctl sync`), the `sync-schedules` flow and the watcher all call ``sync``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any
from uuid import UUID

from prefect.utilities.callables import parameter_schema

from deployments import catch_up
from deployments.manual import ManualSpec
from deployments.plan import Action, Deployed, Plan, Step, plan_sync
from deployments.spec import DeploymentSpec, spec_for
from flows.registered import FLOWS, entrypoint
from jobctl import errors, registry, validation
from jobctl.maintenance import Maintenance
from jobctl.prefect import alerts
from jobctl.prefect.gateway import PrefectGateway
from jobctl.repository import Repository
from jobctl.settings import Settings

logger = logging.getLogger("jobctl.sync")

DEFAULT_WRITE_CONCURRENCY = 4


@dataclass(frozen=True)
class Failure:
    step: Step
    error: str


@dataclass
class SyncReport:
    plan: Plan
    applied: bool
    failures: list[Failure] = field(default_factory=list)
    duration_s: float = 0.0
    # What Prefect holds afterwards, when known without reading it again (no failures).
    deployed_after: list[Deployed] | None = None
    manual_written: int = 0
    # The maintenance pause on during this sync (every deployment kept paused), if any.
    maintenance: Maintenance | None = None
    caught_up: int = 0  # catch-up runs asked for after a pause ended

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        counts = self.plan.counts()
        parts = [f"{counts[a]} {a.value}" for a in Action if counts[a]]
        verb = "applied" if self.applied else "planned"
        if self.caught_up:
            parts.append(f"{self.caught_up} caught up after maintenance")
        text = f"sync {verb} in {self.duration_s:.2f}s: " + (", ".join(parts) or "no rows")
        return text + (" (maintenance pause on)" if self.maintenance is not None else "")

    def markdown(self) -> str:
        counts = self.plan.counts()
        lines = [
            f"# Schedule sync — {'applied' if self.applied else 'dry run'}",
            "",
            "| action | rows |",
            "| --- | ---: |",
            *(f"| {a.value} | {counts[a]} |" for a in Action),
        ]
        if self.plan.rejected:
            lines += ["", "## Rejected rows", "", "| schedule | reason |", "| --- | --- |"]
            lines += [
                f"| `{s.schedule_id}` | {(s.reason or '').replace('|', '/')} |"
                for s in self.plan.rejected
            ]
        if self.failures:
            lines += [
                "",
                "## Failed changes",
                "",
                "| schedule | action | error |",
                "| --- | --- | --- |",
            ]
            lines += [
                f"| `{f.step.schedule_id}` | {f.step.action.value} | {f.error.replace('|', '/')} |"
                for f in self.failures
            ]
        return "\n".join(lines)


def desired_state(
    settings: Settings, repository: Repository, now: datetime | None = None
) -> tuple[dict[str, DeploymentSpec], dict[str, str]]:
    """Specs of the good rows (at ``now``, the clock by default) and the reasons of the
    bad ones; a failed read raises."""
    now = now or datetime.now(UTC)
    rows = repository.list_schedules()
    known_jobs = registry.job_names()
    specs: dict[str, DeploymentSpec] = {}
    rejected: dict[str, str] = {}
    for row in rows:
        try:
            good = validation.validated(row, known_jobs, row.id)
        except errors.InvalidSchedule as exc:
            rejected[row.id] = "; ".join(str(p) for p in exc.problems)
            logger.warning("schedule %s rejected: %s", row.id, rejected[row.id])
            continue
        specs[row.id] = spec_for(
            row.replace(cron=good.cron, is_active=good.is_active),  # type: ignore[arg-type]
            entrypoint=entrypoint(row.job_name),
            work_pool_name=settings.work_pool,
            default_timezone=settings.timezone,
            default_retry_delay_ms=settings.retry_delay_ms,
            default_misfire_grace_ms=settings.misfire_grace_ms,
            now=now,
        )
    return specs, rejected


def maintenance_at(
    repository: Repository, now: datetime, *, end_expired: bool
) -> Maintenance | None:
    """The maintenance pause on at ``now``, if any; one whose ``until`` passed is ended
    first when ``end_expired`` (not in a dry run). A failed read raises."""
    if end_expired:
        repository.end_expired_maintenance(now)
    pause = repository.get_maintenance_or_none()
    return pause if pause is not None and pause.is_on(now) else None


def _parameter_schemas() -> dict[str, dict[str, Any]]:
    return {name: parameter_schema(flow.fn).model_dump() for name, flow in FLOWS.items()}


async def sync(
    settings: Settings,
    repository: Repository,
    gateway: PrefectGateway,
    *,
    dry_run: bool = False,
    known: Iterable[Deployed] | None = None,
    write_concurrency: int = DEFAULT_WRITE_CONCURRENCY,
    progress: Callable[[int, int], None] | None = None,
) -> SyncReport:
    """Bring Prefect's deployments to the rows. ``known``: Prefect's state, if already known.
    ``progress(done, total)`` is told of each deployment change applied (no extra call).

    Nothing is written unless the table and Prefect were both read successfully.
    """
    started = time.perf_counter()
    now = datetime.now(UTC)
    await gateway.require_healthy()
    # The table is read (a blocking read and some CPU: off the event loop, which the
    # watcher listens on) while Prefect answers.
    rows_read = asyncio.create_task(asyncio.to_thread(desired_state, settings, repository, now))
    pause_read = asyncio.create_task(
        asyncio.to_thread(maintenance_at, repository, now, end_expired=not dry_run)
    )
    try:
        deployed = (
            list(known)
            if known is not None
            else await gateway.read_managed_deployments(settings.work_pool)
        )
    finally:
        specs, rejected = await rows_read
        pause = await pause_read
    # A row whose alerts would go nowhere is rejected like any bad row; the alert
    # automations follow the rows (no write when they already do).
    alert_report = await alerts.sync_alerts(settings, repository, gateway, dry_run=dry_run)
    for schedule_id, reason in alert_report.rejected.items():
        if specs.pop(schedule_id, None) is not None:
            rejected[schedule_id] = reason
    pool = await gateway.read_work_pool(settings.work_pool)
    queues = await gateway.read_queues(settings.work_pool) if pool is not None else []
    plan = plan_sync(specs, rejected, deployed, queues, now, maintenance=pause is not None)
    report = SyncReport(plan=plan, applied=not dry_run, maintenance=pause)
    if not dry_run:
        await gateway.ensure_work_pool(
            settings.work_pool, settings.work_pool_concurrency, pool, settings.worker_type
        )
        await gateway.ensure_zombie_automation()
        created: dict[str, UUID] = {}
        if not plan.is_noop:
            report.failures, created = await _apply(
                gateway, settings.work_pool, plan, write_concurrency, progress
            )
        if report.ok:
            report.deployed_after = deployed_after(plan, created)
            if pause is None:
                report.caught_up = await catch_up.after_maintenance(
                    repository, gateway, plan_specs(plan), report.deployed_after, now
                )
        report.manual_written = await _sync_manual_deployments(gateway, settings.work_pool)
    report.duration_s = time.perf_counter() - started
    logger.info(report.summary())
    return report


async def _apply(
    gateway: PrefectGateway,
    work_pool: str,
    plan: Plan,
    write_concurrency: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Failure], dict[str, UUID]]:
    """Carry out ``plan``; returns the failed steps and the ids of created deployments."""
    total, done = len(plan.writes), 0
    if progress is not None:
        progress(0, total)
    failures: list[Failure] = []
    created: dict[str, UUID] = {}
    limit = asyncio.Semaphore(write_concurrency)
    schemas = _parameter_schemas()

    async def attempt(step: Step, call: Callable[[], Awaitable[Any]]) -> None:
        nonlocal done
        try:
            await attempt_one(step, call)
        finally:
            done += 1
            if progress is not None:
                progress(done, total)

    async def attempt_one(step: Step, call: Callable[[], Awaitable[Any]]) -> None:
        async with limit:
            try:
                result = await call()
            except errors.PrefectRefused as exc:
                failures.append(Failure(step, str(exc)))
                logger.error("schedule %s: %s failed: %s", step.schedule_id, step.action, exc)
                return
            if isinstance(result, UUID):
                created[step.schedule_id] = result

    def change(step: Step) -> Callable[[], Awaitable[Any]]:
        if step.action is Action.DELETE:
            assert step.deployed is not None
            return partial(gateway.delete_deployment, step.deployed.id)
        if step.action in (Action.PAUSE, Action.RESUME):
            assert step.deployed is not None
            return partial(gateway.set_paused, step.deployed.id, step.action is Action.PAUSE)
        assert step.spec is not None
        if step.action is Action.EXTEND:
            assert step.deployed is not None
            have = step.deployed.repeat_slugs
            missing = tuple(r for r in step.spec.repeats if r.slug not in have)
            return partial(gateway.add_repeat_schedules, step.deployed.id, missing)
        return partial(gateway.apply_deployment, step.spec, schemas.get(step.spec.flow_name))

    queue_changes: list[tuple[int, Callable[[], Awaitable[None]]]] = [
        *((p, partial(gateway.create_queue, work_pool, name, p)) for name, p in plan.queues.create),
        *((p, partial(gateway.set_queue_priority, q, p)) for q, p in plan.queues.reprioritise),
    ]
    deletions = [s for s in plan.writes if s.action is Action.DELETE]
    others = [s for s in plan.writes if s.action is not Action.DELETE]
    try:
        for _, call in sorted(queue_changes, key=lambda item: item[0]):
            await call()  # one at a time: each can shift the priorities of the others
        # Deletions first, so that a row moved to another job never runs twice.
        await asyncio.gather(*(attempt(step, change(step)) for step in deletions))
        await asyncio.gather(*(attempt(step, change(step)) for step in others))
        for queue in plan.queues.delete:
            await gateway.delete_queue(queue)
    except errors.PrefectUnavailable as exc:
        raise errors.PrefectUnavailable(
            f"the Prefect API went away while the sync applied its plan ({exc}); "
            "the next sync completes it"
        ) from exc
    return failures, created


async def _sync_manual_deployments(gateway: PrefectGateway, work_pool: str) -> int:
    """Create or refresh ``<job>/manual`` for every registered job; returns writes made."""
    current = await gateway.read_manual_versions(work_pool)
    schemas = _parameter_schemas()
    written = 0
    for name, job_flow in FLOWS.items():
        spec = ManualSpec(
            flow_name=name,
            entrypoint=entrypoint(name),
            work_pool_name=work_pool,
            parameter_schema=schemas[name],
            description=job_flow.description or f"Run {name} on demand",
        )
        if current.get(name) != spec.version:
            await gateway.apply_manual_deployment(spec)
            written += 1
    return written


def plan_specs(plan: Plan) -> dict[str, DeploymentSpec]:
    """The spec of every row the plan has one for, as planned (paused or not)."""
    return {step.schedule_id: step.spec for step in plan.steps if step.spec is not None}


def deployed_after(plan: Plan, created: dict[str, UUID]) -> list[Deployed]:
    """Prefect's managed deployments once ``plan`` was applied without failure."""
    result: list[Deployed] = []
    for step in plan.steps:
        if step.action is Action.DELETE or (step.deployed is None and step.spec is None):
            continue
        if step.action in (Action.CREATE, Action.UPDATE):
            assert step.spec is not None
            result.append(
                Deployed(
                    id=created[step.schedule_id],
                    name=step.spec.name,
                    flow_name=step.spec.flow_name,
                    schedule_id=step.schedule_id,
                    version=step.spec.version,
                    paused=step.spec.paused,
                    work_queue_name=step.spec.work_queue_name,
                    repeat_slugs=step.spec.repeat_slugs,
                )
            )
        elif step.action is Action.EXTEND:
            assert step.deployed is not None and step.spec is not None
            slugs = step.deployed.repeat_slugs | step.spec.repeat_slugs
            result.append(replace(step.deployed, repeat_slugs=slugs))
        else:
            assert step.deployed is not None
            paused = {Action.PAUSE: True, Action.RESUME: False}.get(step.action)
            result.append(
                step.deployed if paused is None else replace(step.deployed, paused=paused)
            )
    return result
