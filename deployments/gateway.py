"""Every Prefect API call the sync makes, behind one small async interface."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import (
    DeploymentScheduleCreate,
    WorkPoolCreate,
    WorkPoolUpdate,
)
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterId,
    FlowFilterName,
)
from prefect.client.schemas.objects import (
    ConcurrencyLimitStrategy,
    ConcurrencyOptions,
    StateType,
    WorkPool,
)
from prefect.client.schemas.schedules import CronSchedule, RRuleSchedule
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.workers.process import ProcessWorker

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
from jobctl import cron, prefect_api

PAGE_SIZE = 200  # the most Prefect returns in one read
# Pages read at once: the server spends most of a read building the answer, and a
# 10,000-row read is 50 pages.
READ_CONCURRENCY = 4
ZOMBIE_AUTOMATION = "jobctl: crash zombie flow runs"
ZOMBIE_MISSED_HEARTBEATS = 2


def _zombie_automation() -> AutomationCore:
    silent_s = HEARTBEAT_S * ZOMBIE_MISSED_HEARTBEATS
    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description="jobctl: mark Crashed a flow run that stopped sending heartbeats",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat", "prefect.flow-run.Running"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=silent_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {silent_s} s: its process is gone",
            )
        ],
    )


def _repeat_schedules(
    repeats: tuple[cron.RepeatSchedule, ...],
) -> list[DeploymentScheduleCreate]:
    return [
        DeploymentScheduleCreate(
            schedule=RRuleSchedule(rrule=r.rrule, timezone="UTC"), active=True, slug=r.slug
        )
        for r in repeats
    ]


def deployment_arguments(
    spec: DeploymentSpec, flow_id: UUID, parameter_schema: dict[str, Any] | None
) -> dict[str, Any]:
    """The arguments of ``create_deployment`` for ``spec``: the payload the sync sends."""
    options = None
    if spec.collision_strategy is not None:
        options = ConcurrencyOptions(
            collision_strategy=ConcurrencyLimitStrategy(spec.collision_strategy)
        )
    main_cron, main_zone = spec.main_schedule
    return {
        "flow_id": flow_id,
        "name": spec.name,
        "version": spec.version,
        "schedules": [
            DeploymentScheduleCreate(
                schedule=CronSchedule(cron=main_cron, timezone=main_zone), active=True
            ),
            *_repeat_schedules(spec.repeats),
        ],
        "concurrency_limit": spec.concurrency_limit,
        "concurrency_options": options,
        "parameters": spec.parameters,
        # Prefect's client turns None into the text "None": no description is "".
        "description": spec.description or "",
        "work_pool_name": spec.work_pool_name,
        "work_queue_name": spec.work_queue_name,
        "tags": spec.tags,
        "entrypoint": spec.entrypoint,
        "parameter_openapi_schema": parameter_schema,
        "enforce_parameter_schema": False,
        "paused": spec.paused,
        "job_variables": spec.job_variables,
    }


class Gateway:
    def __init__(self, client: PrefectClient) -> None:
        self.client = client
        self._flow_ids: dict[str, UUID] = {}
        self._flow_lock = asyncio.Lock()  # concurrent creates need one look-up per flow

    # -- reads -------------------------------------------------------------------------

    async def check_reachable(self) -> None:
        await prefect_api.require_healthy(self.client)

    async def read_managed_deployments(self, work_pool_name: str) -> list[Deployed]:
        """Every deployment of ``work_pool_name`` that carries a schedule tag, page by page.

        Filtering by pool as well as by tag lets several jobctl installations share one
        Prefect server, each with its own pool. The pages are read as plain JSON, keeping
        the few fields the plan needs: validating full deployment models (every cron
        parsed again) costs more than the server's answer at a thousand rows.
        """
        raw = await self._filter_deployments(MANAGED_TAG, work_pool_name)
        managed = [(item, schedule_id_of(item["tags"])) for item in raw]
        flow_names = await self._flow_names(
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
        count = (await self.client.request("POST", "/deployments/count", json=where)).json()
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def page(offset: int) -> list[dict[str, Any]]:
            body = {**where, "sort": "NAME_ASC", "limit": PAGE_SIZE, "offset": offset}
            async with gate:
                response = await self.client.request("POST", "/deployments/filter", json=body)
            items: list[dict[str, Any]] = response.json()
            return items

        # One page more than counted: deployments created meanwhile are read too. One
        # shifted by a concurrent change may be read twice (kept once) or missed, which the
        # plan takes as "create", an upsert.
        pages = await asyncio.gather(*(page(o) for o in range(0, count + PAGE_SIZE, PAGE_SIZE)))
        return list({item["id"]: item for items in pages for item in items}.values())

    async def _flow_names(self, flow_ids: set[UUID]) -> dict[UUID, str]:
        names: dict[UUID, str] = {}
        ids = sorted(flow_ids, key=str)
        for start in range(0, len(ids), PAGE_SIZE):
            flows = await self.client.read_flows(
                flow_filter=FlowFilter(id=FlowFilterId(any_=ids[start : start + PAGE_SIZE])),
                limit=PAGE_SIZE,
            )
            for flow in flows:
                names[flow.id] = flow.name
                self._flow_ids[flow.name] = flow.id
        return names

    async def read_queues(self, work_pool_name: str) -> list[Queue]:
        queues = await self.client.read_work_queues(work_pool_name=work_pool_name)
        return [Queue(id=q.id, name=q.name, priority=q.priority or 0) for q in queues]

    async def read_work_pool(self, name: str) -> WorkPool | None:
        try:
            return await self.client.read_work_pool(name)
        except ObjectNotFound:
            return None

    # -- writes ------------------------------------------------------------------------

    async def ensure_work_pool(
        self,
        name: str,
        concurrency_limit: int | None,
        pool: WorkPool | None,
        worker_type: str = ProcessWorker.type,
    ) -> bool:
        """Create the pool if missing (``pool`` is what was read), apply its limit.

        ``worker_type`` is ``process`` or ``jobctl-warm``: both take the process worker's
        job template. An existing pool keeps its type. True when it wrote.
        """
        if pool is None:
            try:
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
        variables). True when it wrote.
        """
        wanted = _zombie_automation()
        existing = await self.client.read_automations_by_name(ZOMBIE_AUTOMATION)
        if not existing:
            await self.client.create_automation(wanted)
            return True
        current = existing[0]
        fields = ("after", "expect", "within", "posture")  # triggers carry fresh ids
        if all(
            getattr(current.trigger, name, None) == getattr(wanted.trigger, name) for name in fields
        ):
            return False
        await self.client.update_automation(current.id, wanted)
        return True

    async def flow_id(self, flow_name: str) -> UUID:
        async with self._flow_lock:
            return await self._flow_id(flow_name)

    async def _flow_id(self, flow_name: str) -> UUID:
        if flow_name not in self._flow_ids:
            flows = await self.client.read_flows(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])), limit=1
            )
            if flows:
                self._flow_ids[flow_name] = flows[0].id
            else:
                self._flow_ids[flow_name] = await self.client.create_flow_from_name(flow_name)
        return self._flow_ids[flow_name]

    async def apply_deployment(
        self, spec: DeploymentSpec, parameter_schema: dict[str, Any] | None
    ) -> UUID:
        """Create or replace (Prefect upserts on flow and name) the deployment of ``spec``."""
        flow_id = await self.flow_id(spec.flow_name)
        return await self.client.create_deployment(
            **deployment_arguments(spec, flow_id, parameter_schema)
        )

    async def add_repeat_schedules(
        self, deployment_id: UUID, repeats: tuple[cron.RepeatSchedule, ...]
    ) -> None:
        """Add schedules to a deployment; unlike a rewrite, this keeps its future runs."""
        if repeats:
            await self.client.create_deployment_schedules(deployment_id, _repeat_schedules(repeats))

    async def read_manual_versions(self, work_pool_name: str) -> dict[str, str | None]:
        """Flow name -> version of the manual deployments of ``work_pool_name``."""
        raw = await self._filter_deployments(MANUAL_TAG, work_pool_name)
        names = await self._flow_names({UUID(item["flow_id"]) for item in raw})
        return {names.get(UUID(item["flow_id"]), ""): item.get("version") for item in raw}

    async def apply_manual_deployment(self, spec: ManualSpec) -> UUID:
        return await self.client.create_deployment(
            flow_id=await self.flow_id(spec.flow_name),
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
        if paused:
            await self.client.pause_deployment(deployment_id)
        else:
            await self.client.resume_deployment(deployment_id)

    async def delete_deployment(self, deployment_id: UUID) -> None:
        try:
            await self.client.delete_deployment(deployment_id)
        except ObjectNotFound:
            pass  # deleted meanwhile (by another sync): the goal is reached

    async def create_queue(self, work_pool_name: str, name: str, priority: int) -> None:
        try:
            await self.client.create_work_queue(
                name=name,
                priority=priority,
                work_pool_name=work_pool_name,
                description=f"jobctl: rows of {name}",
            )
        except ObjectAlreadyExists:
            pass  # another sync created it meanwhile; the next plan checks its order

    async def set_queue_priority(self, queue: Queue, priority: int) -> None:
        await self.client.update_work_queue(queue.id, priority=priority)

    async def delete_queue(self, queue: Queue) -> None:
        try:
            await self.client.delete_work_queue_by_id(queue.id)
        except ObjectNotFound:
            pass
