"""After a maintenance pause: each resumed row runs once for the fire times it missed.

Prefect creates no run for a paused deployment, and on resume schedules from now on: the
fire times that fell inside the pause would simply be lost. jobctl's misfire policy
(docs/architecture.md, "Misfires") runs the most recent missed run of a schedule and
skips the rest, so a pause that ended gets the same: one run per row whose cron fell due
during it, started at once, never one per missed fire time. Rows still disabled, rows
whose cron did not fall due, and rows created after the last fire time get none.

A catch-up run carries the tag ``jobctl:catch-up`` and an idempotency key made of the
pause and the row, so a sync that runs twice, or dies half-way and runs again, creates it
once; the pause is then marked caught up (``caughtUpAt``) and is not looked at again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from deployments.plan import Deployed
from deployments.spec import DeploymentSpec
from jobctl import maintenance
from jobctl.maintenance import Maintenance
from jobctl.prefect.gateway import PrefectGateway
from jobctl.repository import Repository

logger = logging.getLogger("jobctl.catch_up")

CATCH_UP_TAG = "jobctl:catch-up"


@dataclass(frozen=True)
class CatchUp:
    schedule_id: str
    due_at: datetime  # the most recent fire time missed during the pause(s)
    pause_id: int  # the latest pause it falls in: part of the idempotency key

    @property
    def idempotency_key(self) -> str:
        return f"jobctl-catch-up-{self.pause_id}-{self.schedule_id}"


def catch_ups(
    pauses: Sequence[Maintenance],
    specs: Mapping[str, DeploymentSpec],
    created_at: Mapping[str, datetime],
    now: datetime,
) -> list[CatchUp]:
    """At most one catch-up per active row: its latest fire time inside any of ``pauses``
    (which are over at ``now``), after the row was created."""
    found: list[CatchUp] = []
    for schedule_id, spec in specs.items():
        if spec.paused:
            continue
        latest: CatchUp | None = None
        for pause in pauses:
            end = pause.end(now)
            if end is None:  # still on: not ours to catch up yet
                continue
            after = max(pause.started_at, created_at.get(schedule_id, pause.started_at))
            try:
                due = maintenance.latest_fire_between(spec.cron, spec.timezone, after, end)
            except (ValueError, KeyError) as exc:  # a cron croniter cannot walk back
                logger.warning("schedule %s: no catch-up after the pause: %s", schedule_id, exc)
                continue
            if due is not None and (latest is None or due > latest.due_at):
                latest = CatchUp(schedule_id, due, pause.id)
        if latest is not None:
            found.append(latest)
    return found


async def after_maintenance(
    repository: Repository,
    gateway: PrefectGateway,
    specs: Mapping[str, DeploymentSpec],
    deployed: Iterable[Deployed],
    now: datetime,
) -> int:
    """Catch up every pause that is over and was not caught up yet; returns the runs asked
    for. ``deployed``: Prefect's managed deployments after the sync that resumed them."""
    pauses = await asyncio.to_thread(repository.list_uncaught_maintenance, now)
    if not pauses:
        return 0
    rows = await asyncio.to_thread(repository.list_schedules)
    created_at = {row.id: row.created_at for row in rows if row.created_at is not None}
    running = {d.schedule_id: d.id for d in deployed if not d.paused}
    asked = 0
    for item in catch_ups(pauses, specs, created_at, now):
        deployment_id = running.get(item.schedule_id)
        if deployment_id is None:
            continue
        await gateway.create_catch_up_run(
            deployment_id, idempotency_key=item.idempotency_key, tags=[CATCH_UP_TAG]
        )
        logger.info(
            "schedule %s: one catch-up run for %s, missed during the maintenance pause",
            item.schedule_id,
            item.due_at.isoformat(),
        )
        asked += 1
    for pause in pauses:
        await asyncio.to_thread(repository.mark_maintenance_caught_up, pause.id, now)
    return asked
