"""Monitoring endpoints: ``GET /metrics`` (Prometheus) and ``GET /v1/job/status``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from jobctl import status
from jobctl.api.dependencies import SECURED, Context
from jobctl.api.status_schema import StatusOut
from jobctl.metrics import CONTENT_TYPE

router = APIRouter(tags=["monitoring"], dependencies=SECURED)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
async def metrics(context: Context) -> Response:
    """Per job and schedule: attempts, failed runs, missed runs, last success; per job:
    duration and memory histograms; schedules by state; the sync; workers online."""
    prefect = await context.prefect_health.read()
    text = await run_in_threadpool(context.metrics.scrape, None, prefect)
    return Response(text, media_type=CONTENT_TYPE)


@router.get("/v1/job/status")
def schedule_status(
    context: Context,
    failing: Annotated[
        bool, Query(description="Only rows whose last run failed or missed")
    ] = False,
) -> list[StatusOut]:
    """One line per schedule: state, last run, last success, next fire time."""
    lines = status.read_status(context.settings, context.repository, failing_only=failing)
    return [StatusOut.of(line) for line in lines]
