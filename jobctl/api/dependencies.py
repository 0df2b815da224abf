"""What an endpoint may ask for: the app's settings and repository, and who is calling.

``create_app`` puts one ``AppContext`` on ``app.state``; routers reach it through these
dependencies instead of closures, so each router is a module of its own.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from jobctl.api.prefect_health import PrefectHealthCache
from jobctl.metrics import MetricsSource
from jobctl.repository import Repository
from jobctl.settings import Settings

API_USER = "api"  # the caller's name when the single JOBCTL_API_TOKEN (or none) is set


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    repository: Repository
    metrics: MetricsSource
    prefect_health: PrefectHealthCache


def app_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.jobctl
    return context


def _settings(request: Request) -> Settings:
    return app_context(request).settings


def _repository(request: Request) -> Repository:
    return app_context(request).repository


def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The caller's name, after checking its bearer token when a token is configured."""
    token = app_context(request).settings.api_token
    if token is None:
        return API_USER
    scheme, _, supplied = (authorization or "").partition(" ")
    right_token = hmac.compare_digest(supplied.strip().encode(), token.encode())
    if scheme.lower() != "bearer" or not right_token:
        raise HTTPException(401, "missing or wrong bearer token")
    return API_USER


Context = Annotated[AppContext, Depends(app_context)]
SettingsDep = Annotated[Settings, Depends(_settings)]
RepositoryDep = Annotated[Repository, Depends(_repository)]
Caller = Annotated[str, Depends(caller)]
SECURED = [Depends(caller)]
