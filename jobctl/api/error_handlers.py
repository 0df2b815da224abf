"""jobctl's errors as HTTP answers: 404, 409, 422 or 503 with a ``detail``; anything else
is a 500 that discloses nothing (the details stay in the server's log)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from jobctl import errors
from jobctl.api.schemas import ErrorOut

logger = logging.getLogger("jobctl.api")

STATUS_OF_ERROR: dict[type[errors.JobctlError], int] = {
    errors.DatabaseUnavailable: 503,
    errors.PrefectUnavailable: 503,
    errors.MigrationsPending: 503,
    errors.ScheduleNotFound: 404,
    errors.HistoryNotFound: 404,
    errors.UnknownJob: 404,
    errors.ManualDeploymentMissing: 409,
    errors.InvalidInput: 422,
}

RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "A body that cannot be parsed (not UTF-8, too deep)"},
    401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorOut, "description": "Not found"},
    413: {"model": ErrorOut, "description": "Body over 1 MiB"},
    409: {"model": ErrorOut, "description": "The job's manual deployment is not synced yet"},
    422: {"model": ErrorOut, "description": "Invalid input"},
    503: {"model": ErrorOut, "description": "Database or Prefect unavailable"},
}


def install(app: FastAPI) -> None:
    for error, status_code in STATUS_OF_ERROR.items():
        app.add_exception_handler(error, _answer_with(status_code))
    app.add_exception_handler(errors.InvalidSchedule, _invalid_schedule)
    app.add_exception_handler(errors.InvalidParam, _invalid_param)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)


def _answer_with(status_code: int) -> Any:
    async def answer(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status_code)

    return answer


async def _invalid_schedule(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.InvalidSchedule)
    detail = [{"loc": ["body", p.field], "msg": p.message} for p in exc.problems]
    return JSONResponse({"detail": detail}, status_code=422)


async def _invalid_param(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.InvalidParam)
    detail = [
        {"loc": ["body", "param", *p.location], "msg": p.message, "type": p.kind}
        for p in exc.problems
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error", exc_info=exc)
    return JSONResponse({"detail": "internal error"}, status_code=500)
