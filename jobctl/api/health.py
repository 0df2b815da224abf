"""``GET /health``: whether the database and Prefect answer (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from jobctl import errors
from jobctl.api.dependencies import RepositoryDep
from jobctl.api.schemas import Health
from jobctl.prefect_gateway.connection import health_problem, prefect_api_url

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(response: Response, repository: RepositoryDep) -> Health:
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
