"""What jobctl asks of Prefect's API: the boundary's interface, met by ``ClientGateway``
(a real server) and by the in-memory fake the tests use.

Callers receive a gateway (the faces open one with ``connect``); none opens a client.
Errors: a Prefect that cannot be reached raises ``PrefectUnavailable``; a write Prefect
(or its client) refuses raises ``PrefectRefused``; a missing object is an answer (None, 0,
nothing to do), not an error. A read Prefect answers with an error status raises
Prefect's own ``PrefectHTTPStatusError``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from prefect.blocks.abstract import NotificationBlock
from prefect.client.schemas.objects import FlowRun, State, WorkPool
from prefect.events.schemas.automations import Automation, AutomationCore

from deployments.manual import ManualSpec
from deployments.plan import Deployed, Queue
from deployments.spec import DeploymentSpec
from jobctl import cron

PROCESS_WORKER_TYPE = "process"


@dataclass(frozen=True)
class DeploymentRef:
    id: UUID
    paused: bool


class PrefectGateway(Protocol):
    # -- health ------------------------------------------------------------------------

    async def health_problem(self) -> str | None:
        """Why the API does not answer its health check, or None."""

    async def require_healthy(self) -> None:
        """``PrefectUnavailable`` unless the API answers its health check."""

    async def online_workers(self, work_pool_name: str) -> int:
        """Workers of the pool online now; 0 when the pool does not exist yet."""

    # -- the sync: reads ---------------------------------------------------------------

    async def read_managed_deployments(self, work_pool_name: str) -> list[Deployed]:
        """Every deployment of the pool that carries a schedule tag."""

    async def read_manual_versions(self, work_pool_name: str) -> dict[str, str | None]:
        """Flow name -> version of the pool's manual deployments."""

    async def read_queues(self, work_pool_name: str) -> list[Queue]: ...

    async def read_work_pool(self, name: str) -> WorkPool | None: ...

    # -- the sync: writes --------------------------------------------------------------

    async def ensure_work_pool(
        self,
        name: str,
        concurrency_limit: int | None,
        pool: WorkPool | None,
        worker_type: str = PROCESS_WORKER_TYPE,
    ) -> bool:
        """Create the pool if missing (``pool`` is what was read), apply its limit; True
        when it wrote."""

    async def ensure_zombie_automation(self) -> bool:
        """The automation that crashes runs gone silent; True when it wrote."""

    async def apply_deployment(
        self, spec: DeploymentSpec, parameter_schema: dict[str, Any] | None
    ) -> UUID:
        """Create or replace (an upsert on flow and name) the deployment of ``spec``."""

    async def add_repeat_schedules(
        self, deployment_id: UUID, repeats: tuple[cron.RepeatSchedule, ...]
    ) -> None:
        """Add schedules to a deployment, keeping its future runs."""

    async def apply_manual_deployment(self, spec: ManualSpec) -> UUID: ...

    async def set_paused(self, deployment_id: UUID, paused: bool) -> None: ...

    async def delete_deployment(self, deployment_id: UUID) -> None:
        """Delete it; one already gone is no error."""

    async def create_queue(self, work_pool_name: str, name: str, priority: int) -> None:
        """Create it; one created meanwhile is no error."""

    async def set_queue_priority(self, queue: Queue, priority: int) -> None: ...

    async def delete_queue(self, queue: Queue) -> None: ...

    # -- alerts ------------------------------------------------------------------------

    async def block_document_id(self, block_type: str, name: str) -> UUID | None:
        """The id of the block document, or None when there is none."""

    async def load_notification_block(self, slug: str) -> NotificationBlock | None:
        """The block ``<type>/<name>`` if it is a notification block; ``ValueError`` when
        it cannot be loaded."""

    async def read_automations(self) -> list[Automation]: ...

    async def create_automation(self, automation: AutomationCore) -> None: ...

    async def update_automation(self, automation_id: UUID, automation: AutomationCore) -> None: ...

    async def delete_automation(self, automation_id: UUID) -> None: ...

    # -- flow runs ---------------------------------------------------------------------

    async def read_runs(self, run_ids: Collection[str]) -> dict[str, FlowRun]:
        """The runs that exist among ``run_ids``, by id."""

    async def read_ended_runs(
        self, flow_names: Sequence[str], work_pool_name: str, since: datetime
    ) -> list[FlowRun]:
        """Runs of these flows in the pool whose end time is after ``since``."""

    async def read_pending_runs(
        self, flow_names: Sequence[str], work_pool_name: str
    ) -> list[FlowRun]:
        """Runs of these flows in the pool that are Pending now."""

    async def read_runs_in_progress(
        self, flow_names: Sequence[str], work_pool_name: str
    ) -> list[FlowRun]:
        """Runs of these flows in the pool that are Running, or AwaitingRetry."""

    async def read_last_heartbeats(
        self, run_ids: Collection[UUID], since: datetime
    ) -> dict[UUID, datetime]:
        """When each run's flow process last sent a heartbeat since ``since`` (a run with
        none is left out)."""

    async def read_run_states(self, run_id: UUID) -> list[State]: ...

    async def force_run_state(self, run_id: UUID, state: State) -> None:
        """Set the run's state whatever its current one (Prefect's orchestration rules
        aside)."""

    async def read_deployment_envs(
        self, deployment_ids: Collection[UUID]
    ) -> dict[UUID, dict[str, str]]:
        """The environment each deployment gives its flow processes."""

    async def read_flow_names(self, flow_ids: Collection[UUID]) -> dict[UUID, str]: ...

    async def run_deployment(self, name: str, parameters: dict[str, Any]) -> UUID | None:
        """Create a run of the deployment ``<flow>/<deployment>``; None when it does not
        exist."""

    async def create_catch_up_run(
        self, deployment_id: UUID, *, idempotency_key: str, tags: Sequence[str]
    ) -> UUID:
        """A run of the deployment due now (a catch-up after a maintenance pause); asked
        again with the same key, Prefect returns the run it already made."""

    async def find_deployment(self, name: str) -> DeploymentRef | None:
        """The deployment ``<flow>/<deployment>``, or None when there is none."""

    async def create_scheduled_run(
        self,
        deployment_id: UUID,
        *,
        scheduled_time: datetime,
        idempotency_key: str,
        tags: Sequence[str],
    ) -> FlowRun:
        """A run of the deployment Scheduled at ``scheduled_time``; asked again with the
        same key, Prefect returns the run it already made."""

    async def read_run(self, run_id: UUID) -> FlowRun: ...


Connect = Callable[[], AbstractAsyncContextManager[PrefectGateway]]
"""Opens a gateway for a while (``connect``, or a fake's): what long-lived callers keep."""
