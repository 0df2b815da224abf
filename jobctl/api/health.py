"""``GET /health``: whether the database and Prefect answer (no token needed)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response

from jobctl import errors
from jobctl.api.dependencies import RepositoryDep
from jobctl.api.schemas import Health, MaintenanceOut
from jobctl.prefect.gateway.connection import health_problem, prefect_api_url

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, response_model_exclude_none=True)
def health(response: Response, repository: RepositoryDep) -> Health:
    """Whether the database and Prefect answer; ``maintenance`` while a pause is on."""
    pause = None
    try:
        repository.ping()
        database = "ok"
        pause = repository.get_maintenance_or_none()
    except errors.JobctlError:
        database = "unavailable"
    prefect = "unconfigured"
    if (url := prefect_api_url()) is not None:
        prefect = "ok" if health_problem(url, timeout_s=3) is None else "unavailable"
    if database != "ok" or prefect != "ok":
        response.status_code = 503
    if pause is not None and pause.is_on(datetime.now(UTC)):
        return Health(database=database, prefect=prefect, maintenance=MaintenanceOut.of(pause))
    return Health(database=database, prefect=prefect)
