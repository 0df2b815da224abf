"""The boundary's real side: every call jobctl makes to Prefect's API, through one client,
with its paging and its errors (see ``interface``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import (
    DeploymentScheduleCreate,
    DeploymentUpdate,
    WorkPoolCreate,
    WorkPoolUpdate,
)
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowFilter,
    FlowFilterId,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateName,
    FlowRunFilterStateType,
    WorkerFilter,
    WorkerFilterStatus,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import (
    DeploymentSchedule,
    FlowRun,
    State,
    StateType,
    WorkPool,
)
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventOrder,
    EventResourceFilter,
)
from prefect.events.schemas.automations import Automation, AutomationCore
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound, PrefectHTTPStatusError
from prefect.states import Scheduled
from prefect.workers.process import ProcessWorker
from pydantic import ValidationError

from deployments.manual import MANUAL_TAG, ManualSpec, manual_name
from deployments.plan import Deployed, Queue
from deployments.spec import (
    HEARTBEAT_ENV,
    HEARTBEAT_S,
    JOB_TAG_PREFIX,
    MANAGED_TAG,
    DeploymentSpec,
    schedule_id_of,
)
from jobctl import cron, errors
from jobctl.prefect.gateway.connection import prefect_client
from jobctl.prefect.gateway.interface import PROCESS_WORKER_TYPE, DeploymentRef, PrefectGateway
from jobctl.prefect.gateway.payloads import (
    ZOMBIE_AUTOMATION,
    deployment_arguments,
    repeat_schedules,
    zombie_automation,
)

PAGE_SIZE = 200  # the most Prefect returns in one read
# Pages read at once: the server spends most of a read building the answer, and a
# 10,000-row read is 50 pages.
READ_CONCURRENCY = 4


@asynccontextmanager
async def connect(**httpx_settings: Any) -> AsyncIterator[PrefectGateway]:
    """A gateway to the configured server, its client open for the block."""
    async with prefect_client(**httpx_settings) as client:
        yield ClientGateway(client)


@contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except httpx.TransportError as exc:
        raise errors.PrefectUnavailable(f"the Prefect API cannot be reached: {exc}") from exc


@contextmanager
def _write() -> Iterator[None]:
    """A write: unreachable or refused, in jobctl's terms."""
    try:
        with _reachable():
            yield
    except PrefectHTTPStatusError as exc:
        detail = exc.response.text[:300]
        raise errors.PrefectRefused(f"{exc.response.status_code}: {detail}") from exc
    except ValidationError as exc:  # refused by Prefect's client before any request
        raise errors.PrefectRefused(f"refused by the Prefect client: {str(exc)[:300]}") from exc


class ClientGateway:
    """``PrefectGateway`` over one ``PrefectClient``."""

    def __init__(self, client: PrefectClient) -> None:
        self.client = client
        self._flow_ids: dict[str, UUID] = {}
        self._flow_lock = asyncio.Lock()  # concurrent creates need one look-up per flow

    # -- health ------------------------------------------------------------------------

    async def health_problem(self) -> str | None:
        problem = await self.client.api_healthcheck()
        return None if problem is None else (str(problem) or type(problem).__name__)

    async def require_healthy(self) -> None:
        problem = await self.health_problem()
        if problem is not None:
            raise errors.PrefectUnavailable(
                f"the Prefect API at {self.client.api_url} cannot be reached: {problem}"
            )

    async def online_workers(self, work_pool_name: str) -> int:
        try:
            with _reachable():
                workers = await self.client.read_workers_for_work_pool(
                    work_pool_name,
                    worker_filter=WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"])),
                )
        except ObjectNotFound:
            return 0
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 404:  # the same, as this call reports it
                return 0
            raise
        return len(workers)

    # -- the sync: reads ---------------------------------------------------------------

    async def read_managed_deployments(self, work_pool_name: str) -> list[Deployed]:
        """Filtering by pool as well as by tag lets several jobctl installations share one
        Prefect server, each with its own pool. The pages are read as plain JSON, keeping
        the few fields the plan needs: validating full deployment models (every cron
        parsed again) costs more than the server's answer at a thousand rows.
        """
        raw = await self._filter_deployments(MANAGED_TAG, work_pool_name)
        managed = [(item, schedule_id_of(item["tags"])) for item in raw]
        flow_names = await self.read_flow_names(
            {UUID(item["flow_id"]) for item, schedule_id in managed if schedule_id}
        )
        return [
            Deployed(
                id=UUID(item["id"]),
                name=item["name"],
                flow_name=flow_names.get(UUID(item["flow_id"]), ""),
                schedule_id=schedule_id,
                version=item.get("version"),
                paused=bool(item.get("paused")),
                work_queue_name=item.get("work_queue_name"),
                repeat_slugs=frozenset(
                    slug
                    for schedule in item.get("schedules") or []
                    if (slug := schedule.get("slug") or "").startswith(cron.REPEAT_SLUG_PREFIX)
                ),
            )
            for item, schedule_id in managed
            if schedule_id is not None  # not a job's manual deployment
        ]

    async def _filter_deployments(self, tag: str, work_pool_name: str) -> list[dict[str, Any]]:
        """Every deployment of the pool with ``tag``, as JSON, the pages read at once."""
        where = {
            "deployments": {"tags": {"all_": [tag]}},
            "work_pools": {"name": {"any_": [work_pool_name]}},
        }
        with _reachable():
            count = (await self.client.request("POST", "/deployments/count", json=where)).json()
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def page(offset: int) -> list[dict[str, Any]]:
            body = {**where, "sort": "NAME_ASC", "limit": PAGE_SIZE, "offset": offset}
            async with gate:
                with _reachable():
                    response = await self.client.request("POST", "/deployments/filter", json=body)
            items: list[dict[str, Any]] = response.json()
            return items

        # One page more than counted: deployments created meanwhile are read too. One
        # shifted by a concurrent change may be read twice (kept once) or missed, which the
        # plan takes as "create", an upsert.
        pages = await asyncio.gather(*(page(o) for o in range(0, count + PAGE_SIZE, PAGE_SIZE)))
        return list({item["id"]: item for items in pages for item in items}.values())

    async def read_flow_names(self, flow_ids: Collection[UUID]) -> dict[UUID, str]:
        names: dict[UUID, str] = {}
        ids = sorted(flow_ids, key=str)
        for start in range(0, len(ids), PAGE_SIZE):
            with _reachable():
                flows = await self.client.read_flows(
                    flow_filter=FlowFilter(id=FlowFilterId(any_=ids[start : start + PAGE_SIZE])),
                    limit=PAGE_SIZE,
                )
            for flow in flows:
                names[flow.id] = flow.name
                self._flow_ids[flow.name] = flow.id
        return names

    async def read_queues(self, work_pool_name: str) -> list[Queue]:
        with _reachable():
            queues = await self.client.read_work_queues(work_pool_name=work_pool_name)
        return [Queue(id=q.id, name=q.name, priority=q.priority or 0) for q in queues]

    async def read_work_pool(self, name: str) -> WorkPool | None:
        try:
            with _reachable():
                return await self.client.read_work_pool(name)
        except ObjectNotFound:
            return None

    async def read_manual_versions(self, work_pool_name: str) -> dict[str, str | None]:
        raw = await self._filter_deployments(MANUAL_TAG, work_pool_name)
        names = await self.read_flow_names({UUID(item["flow_id"]) for item in raw})
        return {names.get(UUID(item["flow_id"]), ""): item.get("version") for item in raw}

    # -- the sync: writes --------------------------------------------------------------

    async def ensure_work_pool(
        self,
        name: str,
        concurrency_limit: int | None,
        pool: WorkPool | None,
        worker_type: str = PROCESS_WORKER_TYPE,
    ) -> bool:
        """``worker_type`` is ``process`` or ``jobctl-warm``: both take the process worker's
        job template. An existing pool keeps its type."""
        if pool is None:
            try:
                with _write():
                    await self.client.create_work_pool(
                        WorkPoolCreate(
                            name=name,
                            type=worker_type,
                            base_job_template=ProcessWorker.get_default_base_job_template(),
                            concurrency_limit=concurrency_limit,
                            description="jobctl: every scheduled job runs here",
                        )
                    )
            except ObjectAlreadyExists:
                pass  # another sync created it meanwhile
            return True
        if pool.concurrency_limit != concurrency_limit:
            with _write():
                await self.client.update_work_pool(
                    name, WorkPoolUpdate(concurrency_limit=concurrency_limit)
                )
            return True
        return False

    async def ensure_zombie_automation(self) -> bool:
        """Prefect's recipe for runs whose process died: no heartbeat for a while -> Crashed.

        Armed by the run entering Running as well as by a heartbeat, so that a run killed
        before its first heartbeat reached the server is caught too. Needs the flow
        processes to send heartbeats (``HEARTBEAT_ENV`` in the deployments' job
        variables).
        """
        wanted = zombie_automation()
        with _reachable():
            existing = await self.client.read_automations_by_name(ZOMBIE_AUTOMATION)
        if not existing:
            with _write():
                await self.client.create_automation(wanted)
            return True
        current = existing[0]
        fields = ("after", "expect", "within", "posture")  # triggers carry fresh ids
        if all(
            getattr(current.trigger, name, None) == getattr(wanted.trigger, name) for name in fields
        ):
            return False
        with _write():
            await self.client.update_automation(current.id, wanted)
        return True

    async def flow_id(self, flow_name: str) -> UUID:
        async with self._flow_lock:
            if flow_name not in self._flow_ids:
                with _write():
                    flows = await self.client.read_flows(
                        flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])), limit=1
                    )
                    if flows:
                        self._flow_ids[flow_name] = flows[0].id
                    else:
                        created = await self.client.create_flow_from_name(flow_name)
                        self._flow_ids[flow_name] = created
            return self._flow_ids[flow_name]

    async def apply_deployment(
        self, spec: DeploymentSpec, parameter_schema: dict[str, Any] | None
    ) -> UUID:
        """Create the deployment, or update it in place, keeping its schedules' ids.

        Prefect's upsert (``create_deployment``) replaces every schedule; the scheduler's
        idempotency key of a run names its schedule, so after an upsert it made a second
        run for a fire time whose first run a worker had already taken (it takes runs up
        to its prefetch ahead, and taken runs are not deleted): one fire time ran twice.
        """
        flow_id = await self.flow_id(spec.flow_name)
        arguments = deployment_arguments(spec, flow_id, parameter_schema)
        try:
            with _reachable():
                existing = await self.client.read_deployment_by_name(
                    f"{spec.flow_name}/{spec.name}"
                )
        except ObjectNotFound:
            with _write():
                return await self.client.create_deployment(**arguments)
        wanted: list[DeploymentScheduleCreate] = arguments.pop("schedules")
        del arguments["flow_id"], arguments["name"]
        with _write():
            await self.client.update_deployment(existing.id, DeploymentUpdate(**arguments))
            await self._update_schedules(existing.id, existing.schedules, wanted)
        return existing.id

    async def _update_schedules(
        self,
        deployment_id: UUID,
        current: Sequence[DeploymentSchedule],
        wanted: Sequence[DeploymentScheduleCreate],
    ) -> None:
        """Make ``current`` what ``wanted`` says, changing a schedule in place where one
        of the same slug (none: the main cron) exists."""
        by_slug = {schedule.slug: schedule for schedule in current}
        create = []
        for target in wanted:
            found = by_slug.pop(target.slug, None)
            if found is None:
                create.append(target)
            elif found.schedule != target.schedule or not found.active:
                await self.client.update_deployment_schedule(
                    deployment_id, found.id, active=True, schedule=target.schedule
                )
        for left in by_slug.values():
            await self.client.delete_deployment_schedule(deployment_id, left.id)
        if create:
            await self.client.create_deployment_schedules(deployment_id, create)

    async def add_repeat_schedules(
        self, deployment_id: UUID, repeats: tuple[cron.RepeatSchedule, ...]
    ) -> None:
        if repeats:
            with _write():
                await self.client.create_deployment_schedules(
                    deployment_id, repeat_schedules(repeats)
                )

    async def apply_manual_deployment(self, spec: ManualSpec) -> UUID:
        flow_id = await self.flow_id(spec.flow_name)
        with _write():
            return await self.client.create_deployment(
                flow_id=flow_id,
                name=manual_name(spec.work_pool_name),
                version=spec.version,
                schedules=[],
                parameters={},
                description=spec.description,
                work_pool_name=spec.work_pool_name,
                tags=[MANAGED_TAG, MANUAL_TAG, f"{JOB_TAG_PREFIX}{spec.flow_name}"],
                entrypoint=spec.entrypoint,
                parameter_openapi_schema=spec.parameter_schema,
                enforce_parameter_schema=True,
                job_variables={"env": {HEARTBEAT_ENV: str(HEARTBEAT_S)}},
            )

    async def set_paused(self, deployment_id: UUID, paused: bool) -> None:
        with _write():
            if paused:
                await self.client.pause_deployment(deployment_id)
            else:
                await self.client.resume_deployment(deployment_id)

    async def delete_deployment(self, deployment_id: UUID) -> None:
        try:
            with _write():
                await self.client.delete_deployment(deployment_id)
        except ObjectNotFound:
            pass  # deleted meanwhile (by another sync): the goal is reached

    async def create_queue(self, work_pool_name: str, name: str, priority: int) -> None:
        try:
            with _write():
                await self.client.create_work_queue(
                    name=name,
                    priority=priority,
                    work_pool_name=work_pool_name,
                    description=f"jobctl: rows of {name}",
                )
        except ObjectAlreadyExists:
            pass  # another sync created it meanwhile; the next plan checks its order

    async def set_queue_priority(self, queue: Queue, priority: int) -> None:
        with _write():
            await self.client.update_work_queue(queue.id, priority=priority)

    async def delete_queue(self, queue: Queue) -> None:
        try:
            with _write():
                await self.client.delete_work_queue_by_id(queue.id)
        except ObjectNotFound:
            pass

    # -- alerts ------------------------------------------------------------------------

    async def block_document_id(self, block_type: str, name: str) -> UUID | None:
        try:
            with _reachable():
                document = await self.client.read_block_document_by_name(name, block_type)
        except ObjectNotFound:
            return None
        return document.id

    async def load_notification_block(self, slug: str) -> NotificationBlock | None:
        with _reachable():
            block = await Block.aload(slug, client=self.client)
        return block if isinstance(block, NotificationBlock) else None

    async def read_automations(self) -> list[Automation]:
        with _reachable():
            return await self.client.read_automations()

    async def create_automation(self, automation: AutomationCore) -> None:
        with _write():
            await self.client.create_automation(automation)

    async def update_automation(self, automation_id: UUID, automation: AutomationCore) -> None:
        with _write():
            await self.client.update_automation(automation_id, automation)

    async def delete_automation(self, automation_id: UUID) -> None:
        with _write():
            await self.client.delete_automation(automation_id)

    # -- flow runs ---------------------------------------------------------------------

    async def read_runs(self, run_ids: Collection[str]) -> dict[str, FlowRun]:
        ids = sorted(run_ids)
        runs: dict[str, FlowRun] = {}
        for start in range(0, len(ids), PAGE_SIZE):
            chunk = [UUID(i) for i in ids[start : start + PAGE_SIZE]]
            with _reachable():
                page = await self.client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)),
                    limit=PAGE_SIZE,
                )
            runs.update((str(run.id), run) for run in page)
        return runs

    async def read_ended_runs(
        self, flow_names: Sequence[str], work_pool_name: str, since: datetime
    ) -> list[FlowRun]:
        ended: list[FlowRun] = []
        offset = 0
        while True:
            with _reachable():
                page = await self.client.read_flow_runs(
                    flow_filter=FlowFilter(name=FlowFilterName(any_=list(flow_names))),
                    flow_run_filter=FlowRunFilter(end_time=FlowRunFilterEndTime(after_=since)),
                    work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[work_pool_name])),
                    limit=PAGE_SIZE,
                    offset=offset,
                )
            ended.extend(page)
            if len(page) < PAGE_SIZE:
                return ended
            offset += PAGE_SIZE

    async def read_pending_runs(
        self, flow_names: Sequence[str], work_pool_name: str
    ) -> list[FlowRun]:
        with _reachable():
            return await self.client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=list(flow_names))),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PENDING]))
                ),
                work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[work_pool_name])),
                limit=PAGE_SIZE,
            )

    async def read_runs_in_progress(
        self, flow_names: Sequence[str], work_pool_name: str
    ) -> list[FlowRun]:
        """Runs of ``flow_names`` in the pool that are Running, or AwaitingRetry."""
        found: list[FlowRun] = []
        for state_filter in (
            FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])),
            FlowRunFilterState(name=FlowRunFilterStateName(any_=["AwaitingRetry"])),
        ):
            with _reachable():
                found += await self.client.read_flow_runs(
                    flow_filter=FlowFilter(name=FlowFilterName(any_=list(flow_names))),
                    flow_run_filter=FlowRunFilter(state=state_filter),
                    work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[work_pool_name])),
                    limit=PAGE_SIZE,
                )
        return found

    async def read_last_heartbeats(
        self, run_ids: Collection[UUID], since: datetime
    ) -> dict[UUID, datetime]:
        """When each run's flow process last sent a heartbeat since ``since`` (a run with
        none is left out)."""
        found: dict[UUID, datetime] = {}
        for run_id in run_ids:
            with _reachable():
                page = await self.client.read_events(
                    filter=EventFilter(
                        occurred=EventOccurredFilter(since=since),
                        event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
                        resource=EventResourceFilter(id=[f"prefect.flow-run.{run_id}"]),
                        order=EventOrder.DESC,
                    ),
                    limit=1,
                )
            if page.events:
                found[run_id] = page.events[0].occurred
        return found

    async def read_run_states(self, run_id: UUID) -> list[State]:
        with _reachable():
            return await self.client.read_flow_run_states(run_id)

    async def force_run_state(self, run_id: UUID, state: State) -> None:
        """A Scheduled state forced on a run is for the workers: the mark an in-process
        retry left on the run is cleared first (no worker takes a run that has it)."""
        with _write():
            if state.type is StateType.SCHEDULED:
                run = await self.client.read_flow_run(run_id)
                if run.empirical_policy.retry_type == "in_process":
                    policy = run.empirical_policy.model_copy(update={"retry_type": None})
                    await self.client.update_flow_run(run_id, empirical_policy=policy)
            await self.client.set_flow_run_state(run_id, state, force=True)

    async def read_deployment_envs(
        self, deployment_ids: Collection[UUID]
    ) -> dict[UUID, dict[str, str]]:
        ids = sorted(deployment_ids, key=str)
        envs: dict[UUID, dict[str, str]] = {}
        for start in range(0, len(ids), PAGE_SIZE):
            with _reachable():
                page = await self.client.read_deployments(
                    deployment_filter=DeploymentFilter(
                        id=DeploymentFilterId(any_=ids[start : start + PAGE_SIZE])
                    ),
                    limit=PAGE_SIZE,
                )
            for deployment in page:
                env = (deployment.job_variables or {}).get("env") or {}
                envs[deployment.id] = env if isinstance(env, dict) else {}
        return envs

    async def run_deployment(self, name: str, parameters: dict[str, Any]) -> UUID | None:
        try:
            with _reachable():
                deployment = await self.client.read_deployment_by_name(name)
                run = await self.client.create_flow_run_from_deployment(
                    deployment.id, parameters=parameters
                )
        except ObjectNotFound:
            return None
        return run.id

    async def create_catch_up_run(
        self, deployment_id: UUID, *, idempotency_key: str, tags: Sequence[str]
    ) -> UUID:
        with _write():
            run = await self.client.create_flow_run_from_deployment(
                deployment_id, tags=list(tags), idempotency_key=idempotency_key
            )
        return run.id

    async def find_deployment(self, name: str) -> DeploymentRef | None:
        try:
            with _reachable():
                deployment = await self.client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None
        return DeploymentRef(id=deployment.id, paused=bool(deployment.paused))

    async def create_scheduled_run(
        self,
        deployment_id: UUID,
        *,
        scheduled_time: datetime,
        idempotency_key: str,
        tags: Sequence[str],
    ) -> FlowRun:
        with _write():
            return await self.client.create_flow_run_from_deployment(
                deployment_id,
                state=Scheduled(scheduled_time=scheduled_time),
                tags=list(tags),
                idempotency_key=idempotency_key,
            )

    async def read_run(self, run_id: UUID) -> FlowRun:
        with _reachable():
            return await self.client.read_flow_run(run_id)
