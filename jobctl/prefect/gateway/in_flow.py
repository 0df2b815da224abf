"""The calls a job's flow run makes about itself, from inside its flow process.

Synchronous (the flow body may not be async) and short-lived: each opens Prefect's
client for one call, as the flow engine's own calls do.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRunPolicy, StateType


def set_run_policy(run_id: UUID, policy: FlowRunPolicy) -> None:
    """Replace the run's ``empirical_policy`` (its retry delay, say)."""
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, empirical_policy=policy)


def later_run_due(deployment_id: UUID, run_id: UUID, after: datetime, before: datetime) -> bool:
    """Whether another run of the deployment, not cancelled, was due after ``after`` and by
    ``before``."""
    with get_client(sync_client=True) as client:
        later = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(not_any_=[run_id]),
                expected_start_time=FlowRunFilterExpectedStartTime(
                    after_=after + timedelta(microseconds=1), before_=before
                ),
                # Runs already cancelled (skipped, or refused by an overlap limit) do not
                # catch up: this one may be the last one left.
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(
                        not_any_=[StateType.CANCELLED, StateType.CANCELLING]
                    )
                ),
            ),
            limit=1,
        )
    return bool(later)
