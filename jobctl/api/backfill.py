"""Backfill a schedule over a past range: ``POST /v1/job/schedules/{id}/backfill``.

The fire times are computed and checked before answering (a bad range or too many fire
times is a 422 at once); the runs are then created in the background: all at once for a
row whose overlap is ``allow``, one after the other for ``skip`` and ``queue``, which
keeps a thread of this process busy until the last run ends. Posting the same backfill
again creates no run twice (see ``jobctl.prefect.backfill``), so a backfill cut short by a restart
of the API resumes that way.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from jobctl import backfill_plan, errors
from jobctl.api.dependencies import SECURED, RepositoryDep, SettingsDep
from jobctl.prefect.backfill import Backfill, execute, plan
from jobctl.prefect.gateway.client import connect
from jobctl.prefect.gateway.connection import require_prefect_api
from jobctl.repository import Repository

logger = logging.getLogger("jobctl.api")

router = APIRouter(prefix="/v1/job/schedules", tags=["backfill"], dependencies=SECURED)

MAX_RUNS_CEILING = 100_000


class BackfillIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    start: datetime = Field(
        alias="from",
        description="First instant of the range, included (ISO-8601; UTC without an offset).",
    )
    end: datetime = Field(alias="to", description="End of the range, excluded; not after now.")
    dryRun: bool = Field(default=False, description="List the fire times; run nothing.")
    maxRuns: Annotated[int, Field(ge=1, le=MAX_RUNS_CEILING)] = Field(
        default=backfill_plan.DEFAULT_MAX_RUNS,
        description="Refuse a range with more fire times than this.",
    )


class BackfillOut(BaseModel):
    scheduleId: str
    cron: str
    timezone: str
    overlap: str
    origin: str
    dryRun: bool
    fireTimes: list[datetime]


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.post(
    "/{schedule_id}/backfill",
    responses={202: {"description": "Fire times computed; the runs are being created"}},
)
def backfill(
    schedule_id: str,
    body: BackfillIn,
    repository: RepositoryDep,
    settings: SettingsDep,
    response: Response,
) -> BackfillOut:
    """One run of the row's job per fire time of its cron in [from, to), each scheduled at
    its fire time; ``dryRun`` only lists them. 200 for a dry run, else 202."""
    try:
        work = plan(
            repository,
            schedule_id,
            _utc(body.start),
            _utc(body.end),
            default_timezone=settings.timezone,
            max_runs=body.maxRuns,
        )
    except errors.BackfillRefused as exc:
        raise HTTPException(422, str(exc)) from None
    if not body.dryRun:
        require_prefect_api()
        _start_in_background(work, repository)
        response.status_code = 202
    return BackfillOut(
        scheduleId=work.schedule_id,
        cron=work.cron,
        timezone=work.timezone,
        overlap=work.overlap,
        origin=work.origin,
        dryRun=body.dryRun,
        fireTimes=[t.astimezone(UTC) for t in work.fire_times],
    )


def _start_in_background(work: Backfill, repository: Repository) -> None:
    async def run() -> None:
        async with connect() as gateway:
            runs = await execute(work, gateway, repository, wait=False)
        logger.info("backfill of schedule %s: %d run(s) created", work.schedule_id, len(runs))

    def main() -> None:
        try:
            asyncio.run(run())
        except Exception:  # a thread has no caller to tell: the log says it
            logger.exception("backfill of schedule %s stopped", work.schedule_id)

    # The request's context goes along: Prefect's settings (its API URL) live in it.
    context = contextvars.copy_context()
    threading.Thread(
        target=context.run, args=(main,), name=f"backfill-{work.schedule_id}", daemon=True
    ).start()
