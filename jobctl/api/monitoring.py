"""Monitoring endpoints: ``GET /metrics`` (Prometheus) and ``GET /v1/job/status``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from jobctl.metrics import CONTENT_TYPE, MetricsSource
from jobctl.repository import Repository


def router(repository: Repository) -> APIRouter:
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

    return routes
