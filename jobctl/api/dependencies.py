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
from jobctl.settings import SINGLE_TOKEN_NAME, Settings

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
    """The caller's name, after checking its bearer token when tokens are configured:
    ``api`` for JOBCTL_API_TOKEN, ``api:<name>`` for a token of JOBCTL_API_TOKENS."""
    callers = app_context(request).settings.api_callers
    if not callers:
        return API_USER
    scheme, _, supplied = (authorization or "").partition(" ")
    presented = supplied.strip().encode()
    name = None
    for token, token_name in callers.items():  # every one compared: no early exit
        if hmac.compare_digest(presented, token.encode()):
            name = token_name
    if scheme.lower() != "bearer" or name is None:
        raise HTTPException(401, "missing or wrong bearer token")
    return API_USER if name == SINGLE_TOKEN_NAME else f"{API_USER}:{name}"


def _acting_repository(request: Request, name: Annotated[str, Depends(caller)]) -> Repository:
    return app_context(request).repository.acting_as(name)


Context = Annotated[AppContext, Depends(app_context)]
SettingsDep = Annotated[Settings, Depends(_settings)]
RepositoryDep = Annotated[Repository, Depends(_repository)]
# The repository whose writes to JobSchedule the audit trail attributes to the caller.
ActingRepository = Annotated[Repository, Depends(_acting_repository)]
Caller = Annotated[str, Depends(caller)]
SECURED = [Depends(caller)]
