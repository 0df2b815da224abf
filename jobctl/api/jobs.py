"""Running jobs by hand: ``call-job`` as the original system answered it, and submitted runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from jobctl.api.dependencies import SECURED, Caller, Context
from jobctl.api.schemas import CallJobRequest, CallJobResponse, RunRequest, SubmittedRun
from jobctl.prefect import manual_runs
from jobctl.prefect.gateway.client import connect

router = APIRouter(tags=["jobs"], dependencies=SECURED)


@router.post(
    "/v1/job/call-job",
    responses={
        200: {"model": CallJobResponse, "description": "The job ran and succeeded"},
        202: {"model": SubmittedRun, "description": "Submitted to the workers"},
        424: {"model": CallJobResponse, "description": "The job ran and failed"},
    },
)
async def call_job(body: CallJobRequest, context: Context, user: Caller) -> JSONResponse:
    """Run a registered job as the original system did, and answer with its result."""
    if not body.wait:
        return await _submit(body.methodName, body.param, user, context.settings.work_pool)
    manual_runs.checked_param(body.methodName, body.param)  # 404/422 before running
    outcome = await run_in_threadpool(
        manual_runs.run_here, body.methodName, body.param, user, context.repository
    )
    succeeded = outcome.status == "SUCCESS"
    payload = CallJobResponse(
        status="SUCCESS" if succeeded else "FAILED",
        result=jsonable_encoder(outcome.result),
        error=outcome.error,
        flowRunId=outcome.flow_run_id,
        historyId=outcome.history_id,
    )
    return JSONResponse(payload.model_dump(), status_code=200 if succeeded else 424)


@router.post("/v1/job/runs", status_code=202, response_model=SubmittedRun)
async def submit_run(body: RunRequest, context: Context, user: Caller) -> JSONResponse:
    """Submit a run of the job's manual deployment to the workers."""
    return await _submit(body.methodName, body.param, user, context.settings.work_pool)


async def _submit(method: str, param: Any, user: str, work_pool: str) -> JSONResponse:
    async with connect() as gateway:
        flow_run_id, deployment = await manual_runs.submit(method, param, user, gateway, work_pool)
    run = SubmittedRun(flowRunId=flow_run_id, deployment=deployment)
    return JSONResponse(run.model_dump(), status_code=202)
