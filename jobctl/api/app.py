"""The FastAPI application: ``create_app(settings)``.

Every endpoint but ``/health`` requires ``Authorization: Bearer <JOBCTL_API_TOKEN>`` when a
token is configured (``jobctl api`` refuses to listen beyond loopback without one).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from flows import registered
from jobctl import db, errors, manual_runs, registry, validation
from jobctl.api import monitoring
from jobctl.api.schemas import (
    AttemptOut,
    CallJobRequest,
    CallJobResponse,
    ErrorOut,
    Health,
    RunRequest,
    ScheduleCreate,
    ScheduleFields,
    ScheduleOut,
    SubmittedRun,
)
from jobctl.models import JobStatus
from jobctl.prefect_api import health_problem, prefect_api_url, prefect_client
from jobctl.records import HistoryFilter, ScheduleSpec
from jobctl.repository import Repository
from jobctl.settings import Settings

logger = logging.getLogger("jobctl.api")

MAX_BODY_BYTES = 1024 * 1024
API_USER = "api"

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "A body that cannot be parsed (not UTF-8, too deep)"},
    401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorOut, "description": "Not found"},
    413: {"model": ErrorOut, "description": "Body over 1 MiB"},
    409: {"model": ErrorOut, "description": "The job's manual deployment is not synced yet"},
    422: {"model": ErrorOut, "description": "Invalid input"},
    503: {"model": ErrorOut, "description": "Database or Prefect unavailable"},
}


def create_app(settings: Settings) -> FastAPI:
    engine = db.create_db_engine(settings.database_url)
    repository = Repository(engine)
    # Jobs called here run in this process: their history goes to this app's database.
    registered.recorder.use_repository(repository)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="jobctl",
        version="1",
        description="Trigger jobs by hand, manage schedules, read history.",
        responses=ERRORS,
        lifespan=lifespan,
    )

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        if settings.api_token is None:
            return
        scheme, _, supplied = (authorization or "").partition(" ")
        right_token = hmac.compare_digest(supplied.strip().encode(), settings.api_token.encode())
        if scheme.lower() != "bearer" or not right_token:
            raise HTTPException(401, "missing or wrong bearer token")

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse({"detail": "request body over 1 MiB"}, status_code=413)
        if length is None and request.method in ("POST", "PATCH", "PUT"):
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    return JSONResponse({"detail": "request body over 1 MiB"}, status_code=413)
            request._body = body  # the stream is consumed: hand the bytes on
        return await call_next(request)

    @app.exception_handler(errors.DatabaseUnavailable)
    @app.exception_handler(errors.PrefectUnavailable)
    @app.exception_handler(errors.MigrationsPending)
    async def unavailable(_: Request, exc: errors.JobctlError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(errors.ScheduleNotFound)
    @app.exception_handler(errors.HistoryNotFound)
    @app.exception_handler(errors.UnknownJob)
    async def not_found(_: Request, exc: errors.JobctlError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(errors.ManualDeploymentMissing)
    async def not_synced(_: Request, exc: errors.JobctlError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(errors.InvalidInput)
    async def refused(_: Request, exc: errors.JobctlError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(errors.InvalidSchedule)
    async def invalid_schedule(_: Request, exc: errors.InvalidSchedule) -> JSONResponse:
        detail = [{"loc": ["body", p.field], "msg": p.message} for p in exc.problems]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(errors.InvalidParam)
    async def invalid_param(_: Request, exc: errors.InvalidParam) -> JSONResponse:
        detail = [
            {"loc": ["body", "param", *p.location], "msg": p.message, "type": p.kind}
            for p in exc.problems
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error")  # the details stay in the server's log
        return JSONResponse({"detail": "internal error"}, status_code=500)

    secured = [Depends(authorized)]

    @app.get("/health", response_model=Health, tags=["health"])
    def health(response: Response) -> Health:
        try:
            repository.ping()
            database = "ok"
        except errors.JobctlError:
            database = "unavailable"
        prefect = "unconfigured"
        if (url := prefect_api_url()) is not None:
            prefect = "ok" if health_problem(url, timeout_s=3) is None else "unavailable"
        if database != "ok" or prefect != "ok":
            response.status_code = 503
        return Health(database=database, prefect=prefect)

    @app.post(
        "/v1/job/call-job",
        dependencies=secured,
        tags=["jobs"],
        responses={
            200: {"model": CallJobResponse, "description": "The job ran and succeeded"},
            202: {"model": SubmittedRun, "description": "Submitted to the workers"},
            424: {"model": CallJobResponse, "description": "The job ran and failed"},
        },
    )
    async def call_job(body: CallJobRequest) -> JSONResponse:
        """Run a registered job as the original system did, and answer with its result."""
        if not body.wait:
            return await _submit(body.methodName, body.param)
        manual_runs.checked_param(body.methodName, body.param)  # 404/422 before running
        outcome = await run_in_threadpool(
            manual_runs.run_here, body.methodName, body.param, API_USER, repository
        )
        payload = CallJobResponse(
            status="SUCCESS" if outcome.status == "SUCCESS" else "FAILED",
            result=jsonable_encoder(outcome.result),
            error=outcome.error,
            flowRunId=outcome.flow_run_id,
            historyId=outcome.history_id,
        )
        return JSONResponse(
            payload.model_dump(), status_code=200 if outcome.status == "SUCCESS" else 424
        )

    async def _submit(method: str, param: Any) -> JSONResponse:
        async with prefect_client() as client:
            flow_run_id, deployment = await manual_runs.submit(
                method, param, API_USER, client, settings.work_pool
            )
        run = SubmittedRun(flowRunId=flow_run_id, deployment=deployment)
        return JSONResponse(run.model_dump(), status_code=202)

    @app.post(
        "/v1/job/runs",
        dependencies=secured,
        tags=["jobs"],
        status_code=202,
        response_model=SubmittedRun,
    )
    async def submit_run(body: RunRequest) -> JSONResponse:
        """Submit a run of the job's manual deployment to the workers."""
        return await _submit(body.methodName, body.param)

    @app.get("/v1/job/schedules", dependencies=secured, tags=["schedules"])
    def list_schedules() -> list[ScheduleOut]:
        return [ScheduleOut.of(row) for row in repository.list_schedules()]

    @app.get("/v1/job/schedules/{schedule_id}", dependencies=secured, tags=["schedules"])
    def get_schedule(schedule_id: str) -> ScheduleOut:
        return ScheduleOut.of(repository.get_schedule(schedule_id))

    @app.post("/v1/job/schedules", dependencies=secured, tags=["schedules"], status_code=201)
    def add_schedule(body: ScheduleCreate) -> ScheduleOut:
        spec = ScheduleSpec(**body.spec_changes(include_defaults=True))
        checked = validation.validated(spec, registry.job_names())
        return ScheduleOut.of(repository.add_schedule(checked))

    @app.patch("/v1/job/schedules/{schedule_id}", dependencies=secured, tags=["schedules"])
    def update_schedule(schedule_id: str, body: ScheduleFields) -> ScheduleOut:
        changes = body.spec_changes(include_defaults=False)
        current = repository.get_schedule(schedule_id)
        checked = validation.validated(
            current.spec().replace(**changes), registry.job_names(), schedule_id
        )
        if not changes:
            return ScheduleOut.of(current)
        row = repository.update_schedule(
            schedule_id, **{name: getattr(checked, name) for name in changes}
        )
        return ScheduleOut.of(row)

    @app.delete(
        "/v1/job/schedules/{schedule_id}",
        dependencies=secured,
        tags=["schedules"],
        status_code=204,
    )
    def delete_schedule(schedule_id: str) -> Response:
        repository.delete_schedule(schedule_id)
        return Response(status_code=204)

    @app.get("/v1/job/history", dependencies=secured, tags=["history"])
    def history(
        job: Annotated[str | None, Query(max_length=200)] = None,
        status: JobStatus | None = None,
        schedule: Annotated[str | None, Query(max_length=200)] = None,
        since: Annotated[str | None, Query(description="ISO-8601")] = None,
        until: Annotated[str | None, Query(description="ISO-8601")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> list[AttemptOut]:
        query = HistoryFilter(
            job_name=job,
            status=status,
            schedule_id=schedule,
            since=_instant("since", since),
            until=_instant("until", until),
            limit=limit,
            offset=offset,
        )
        return [AttemptOut.of(row) for row in repository.list_history(query)]

    @app.get("/v1/job/history/{history_id}", dependencies=secured, tags=["history"])
    def attempt(history_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> AttemptOut:
        return AttemptOut.of(repository.get_attempt(history_id))

    app.include_router(monitoring.router(settings, repository), dependencies=secured)
    return app


def _instant(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise HTTPException(422, f"{name}: not an ISO-8601 time within years 1-9999") from None
