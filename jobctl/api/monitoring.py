"""Monitoring endpoints: ``GET /metrics`` (Prometheus) and ``GET /v1/job/status``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from jobctl import status
from jobctl.api.status_schema import StatusOut
from jobctl.metrics import CONTENT_TYPE, MetricsSource
from jobctl.repository import Repository
from jobctl.settings import Settings


def router(settings: Settings, repository: Repository) -> APIRouter:
    routes = APIRouter()
    source = MetricsSource(repository)

    @routes.get(
        "/metrics",
        tags=["monitoring"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
    )
    def metrics() -> Response:
        """Per job and schedule: attempts, failed runs, last success; histograms per job."""
        return Response(source.scrape(), media_type=CONTENT_TYPE)

    @routes.get("/v1/job/status", tags=["monitoring"])
    def schedule_status(
        failing: Annotated[
            bool, Query(description="Only rows whose last run failed or missed")
        ] = False,
    ) -> list[StatusOut]:
        """One line per schedule: state, last run, last success, next fire time."""
        lines = status.read_status(settings, repository, failing_only=failing)
        return [StatusOut.of(line) for line in lines]

    return routes
