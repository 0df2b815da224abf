"""The FastAPI application: ``create_app(settings)``.

Every endpoint but ``/health`` requires ``Authorization: Bearer <token>`` when a token is
configured (``jobctl api`` refuses to listen beyond loopback without one). Each router is a
module of its own; they reach the app's settings and repository through
``jobctl.api.dependencies``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from flows import registered
from jobctl import db
from jobctl.api import (
    audit,
    backfill,
    error_handlers,
    health,
    history,
    jobs,
    maintenance,
    monitoring,
    schedules,
)
from jobctl.api.dependencies import AppContext
from jobctl.api.prefect_health import PrefectHealthCache
from jobctl.metrics import MetricsSource
from jobctl.repository import Repository
from jobctl.settings import Settings

MAX_BODY_BYTES = 1024 * 1024


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
        responses=error_handlers.RESPONSES,
        lifespan=lifespan,
    )
    app.state.jobctl = AppContext(
        settings=settings,
        repository=repository,
        metrics=MetricsSource(repository, default_alert_to=settings.alert_to),
        prefect_health=PrefectHealthCache(settings.work_pool),
    )
    app.middleware("http")(limit_body)
    error_handlers.install(app)
    # Routers with fixed paths under /v1/job/schedules/ come before `schedules`, whose
    # /{schedule_id} would take them.
    for router in (health.router, jobs.router, audit.router, schedules.router, history.router):
        app.include_router(router)
    app.include_router(monitoring.router)
    app.include_router(maintenance.router)
    app.include_router(backfill.router)
    return app


async def limit_body(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Refuse a body over 1 MiB, declared or streamed, before anything parses it."""
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
