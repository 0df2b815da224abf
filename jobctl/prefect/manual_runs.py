"""Running a job by hand: in this process and waiting for it, or submitted to the workers.

Shared by the HTTP API (``POST /v1/job/call-job``) and ``jobctl call``. Only registered
jobs can be run, and ``param`` must fit the job's signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import httpx
from prefect.client.schemas.objects import State
from prefect.exceptions import PrefectHTTPStatusError

from deployments.manual import manual_deployment_name
from flows.registered import FLOWS
from jobctl import errors, registry, validation
from jobctl.prefect.gateway import PrefectGateway
from jobctl.prefect.gateway.connection import require_prefect_api
from jobctl.records import HistoryFilter
from jobctl.repository import Repository


@dataclass(frozen=True)
class Outcome:
    status: str  # SUCCESS or FAILED
    result: Any
    error: str | None
    flow_run_id: str | None
    history_id: int | None


def checked_param(job_name: str, param: Any) -> tuple[registry.Job, Any]:
    """The job and ``param`` validated against its signature.

    Raises ``UnknownJob`` for a name that is not registered (``__init__``, a flow's
    name...), ``InvalidParam`` for a param that does not fit,
    ``InvalidInput`` for one that holds a NUL character.
    """
    job = registry.get_job(job_name)
    value = job.check_param(param)
    if validation.contains_nul(value):
        # Prefect's server on PostgreSQL cannot store it: the run would never be created.
        raise errors.InvalidInput("param: contains a NUL character (\\u0000)")
    return job, value


def run_here(job_name: str, param: Any, user: str, repository: Repository) -> Outcome:
    """Run the job's flow in this process (a flow run like any other, on the server of
    ``PREFECT_API_URL``) and wait for it.

    Its history is written by the process's recorder (``flows.registered.recorder``):
    callers point it at their database first. Raises ``PrefectUnavailable`` when
    ``PREFECT_API_URL`` is unset: Prefect would start an ephemeral API of its own, which
    only a clean exit of this process stops, and whose runs no one else sees.
    """
    job, value = checked_param(job_name, param)
    require_prefect_api()
    try:
        state = cast(State, FLOWS[job.name](param=value, user=user, return_state=True))
    except Exception as exc:  # the run could not even be created or followed
        problem = _prefect_problem(exc)
        if problem is None:
            raise
        raise errors.PrefectUnavailable(problem) from exc
    flow_run_id = str(state.state_details.flow_run_id) if state.state_details else None
    attempts = (
        repository.list_history(HistoryFilter(flow_run_id=flow_run_id, limit=1))
        if flow_run_id
        else []
    )
    history_id = attempts[0].id if attempts else None
    if state.is_completed():
        return Outcome("SUCCESS", state.result(), None, flow_run_id, history_id)
    error = attempts[0].error if attempts and attempts[0].error else state.message
    return Outcome("FAILED", None, (error or "failed").split("\n\n")[0], flow_run_id, history_id)


def _prefect_problem(exc: BaseException) -> str | None:
    """What made Prefect unusable, if ``exc`` comes from there (a refused connection, a
    5xx of the server); Prefect wraps some of them (a RuntimeError "Failed to reach API")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, httpx.TransportError):
            return f"the Prefect API cannot be reached: {seen}"
        if isinstance(seen, PrefectHTTPStatusError) and seen.response.status_code >= 500:
            return f"the Prefect API answered {seen.response.status_code}"
        seen = seen.__cause__ or seen.__context__
    return None


async def submit(
    job_name: str, param: Any, user: str, gateway: PrefectGateway, work_pool_name: str
) -> tuple[str, str]:
    """Create a run of the job's manual deployment for the workers.

    Returns the run's id and the deployment's name.
    """
    job, value = checked_param(job_name, param)
    name = manual_deployment_name(job.name, work_pool_name)
    run_id = await gateway.run_deployment(name, {"param": value, "user": user})
    if run_id is None:
        raise errors.ManualDeploymentMissing(
            f"there is no deployment {name} yet: run `jobctl sync` (or start the watcher)"
        )
    return str(run_id), name
