"""Planning: compare what the rows want with what Prefect has, decide the fewest changes.

Pure functions over values, so every case is testable without a server.
"""

from __future__ import annotations

import enum
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from uuid import UUID

from deployments.spec import QUEUE_PREFIX, DeploymentSpec
from jobctl import cron


class Action(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    # Add the repeat schedules of the next fall-back, and only them: rewriting the
    # deployment would delete its future runs.
    EXTEND = "extend"
    PAUSE = "pause"
    RESUME = "resume"
    DELETE = "delete"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Deployed:
    """What Prefect has for one managed deployment."""

    id: UUID
    name: str
    flow_name: str
    schedule_id: str
    version: str | None
    paused: bool
    work_queue_name: str | None = None
    # Slugs of its repeat schedules (``jobctl.cron.RepeatSchedule``), past ones included.
    repeat_slugs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Step:
    action: Action
    schedule_id: str
    spec: DeploymentSpec | None = None
    deployed: Deployed | None = None
    reason: str | None = None
    # An update that changes the job: the deployment moves to another flow.
    moves_flow: bool = False


@dataclass(frozen=True)
class Queue:
    id: UUID
    name: str
    priority: int


@dataclass(frozen=True)
class QueuePlan:
    """Queue changes; creations and renumberings are applied together by ascending priority."""

    create: list[tuple[str, int]] = field(default_factory=list)
    reprioritise: list[tuple[Queue, int]] = field(default_factory=list)
    delete: list[Queue] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.create or self.reprioritise or self.delete)


@dataclass(frozen=True)
class Plan:
    steps: list[Step]
    queues: QueuePlan

    def counts(self) -> Counter[Action]:
        return Counter(step.action for step in self.steps)

    @property
    def rejected(self) -> list[Step]:
        return [s for s in self.steps if s.reason is not None]

    @property
    def writes(self) -> list[Step]:
        return [s for s in self.steps if s.action not in (Action.UNCHANGED, Action.REJECTED)]

    @property
    def is_noop(self) -> bool:
        return not self.writes and self.queues.is_empty


def plan_deployments(
    specs: Mapping[str, DeploymentSpec],
    rejected: Mapping[str, str],
    deployed: Iterable[Deployed],
    now: datetime | None = None,
    *,
    maintenance: bool = False,
) -> list[Step]:
    """One step per row and per stray deployment.

    ``now`` tells the repeat schedules of past fall-backs, which are left in place (they
    never fire again; removing one would delete the deployment's future runs), from live
    ones a spec no longer wants; without it, every unwanted one counts as live.

    ``maintenance``: a maintenance pause is on, so every deployment is wanted paused
    whatever its row's ``isActive``; other changes of a row still apply (paused).
    """
    if maintenance:
        specs = {sid: replace(spec, paused=True) for sid, spec in specs.items()}
    by_schedule: dict[str, list[Deployed]] = {}
    for item in deployed:
        by_schedule.setdefault(item.schedule_id, []).append(item)

    steps: list[Step] = []
    for schedule_id, spec in specs.items():
        existing = by_schedule.pop(schedule_id, [])
        keep = next((d for d in existing if d.flow_name == spec.flow_name), None)
        # Leftovers of a job change, or of a sync killed half-way through a move.
        for stray in existing:
            if stray is not keep:
                steps.append(Step(Action.DELETE, schedule_id, deployed=stray))
        if keep is None:
            steps.append(Step(Action.CREATE, schedule_id, spec=spec, moves_flow=bool(existing)))
        elif keep.version != spec.version or _stale_repeats(spec, keep, now):
            steps.append(Step(Action.UPDATE, schedule_id, spec=spec, deployed=keep))
        elif not spec.repeat_slugs <= keep.repeat_slugs:
            # With a pause or resume as well: one update does both.
            action = Action.EXTEND if keep.paused == spec.paused else Action.UPDATE
            steps.append(Step(action, schedule_id, spec=spec, deployed=keep))
        elif keep.paused != spec.paused:
            action = Action.PAUSE if spec.paused else Action.RESUME
            steps.append(Step(action, schedule_id, spec=spec, deployed=keep))
        else:
            steps.append(Step(Action.UNCHANGED, schedule_id, spec=spec, deployed=keep))

    for schedule_id, reason in rejected.items():
        existing = by_schedule.pop(schedule_id, [])
        if not existing:
            steps.append(Step(Action.REJECTED, schedule_id, reason=reason))
        # Paused, not deleted: an outdated config must not keep running, and the
        # deployment comes back as it was once the row is fixed.
        for item in existing:
            action = Action.REJECTED if item.paused else Action.PAUSE
            steps.append(Step(action, schedule_id, deployed=item, reason=reason))

    for schedule_id, leftovers in by_schedule.items():
        steps.extend(Step(Action.DELETE, schedule_id, deployed=item) for item in leftovers)
    return steps


def _stale_repeats(spec: DeploymentSpec, deployed: Deployed, now: datetime | None) -> bool:
    """Whether the deployment holds a repeat schedule of a fall-back still to come that
    the spec does not want (the zone's rules changed): only a rewrite removes it."""
    for slug in deployed.repeat_slugs - spec.repeat_slugs:
        ends = cron.repeat_slug_ends(slug)
        if now is None or ends is None or ends > now:
            return True
    return False


def plan_sync(
    specs: Mapping[str, DeploymentSpec],
    rejected: Mapping[str, str],
    deployed: Iterable[Deployed],
    queues: Iterable[Queue],
    now: datetime | None = None,
    *,
    maintenance: bool = False,
) -> Plan:
    """The whole plan of one sync: a step per row and per stray deployment, and the queue
    changes, keeping the queues that a rejected row's remaining deployment still uses.
    ``now`` and ``maintenance``: see ``plan_deployments``."""
    steps = plan_deployments(specs, rejected, deployed, now, maintenance=maintenance)
    kept_queues = {
        s.deployed.work_queue_name
        for s in steps
        if s.spec is None and s.action is not Action.DELETE and s.deployed is not None
        if s.deployed.work_queue_name
    }
    return Plan(
        steps=steps,
        queues=plan_queues({s.priority for s in specs.values()}, queues, kept_queues),
    )


def plan_queues(
    priorities: Iterable[int], current: Iterable[Queue], in_use: Iterable[str] = ()
) -> QueuePlan:
    """One work queue per distinct row priority, Prefect priorities in the same order.

    Prefect priorities are unique in a pool (1 is highest) and shift when one is taken, so
    when the order is wrong every managed queue is renumbered from 1 down. Only the order
    among our queues matters: other queues (``default``) are not ordered against them.
    Queues we do not manage (``default``) are left alone, and so is a queue that a
    remaining deployment still uses (``in_use``: a rejected row's paused deployment), since
    deleting a queue detaches its deployments from the pool.
    """
    wanted = sorted(set(priorities))
    managed = {q.name: q for q in current if q.name.startswith(QUEUE_PREFIX)}
    wanted_names = [f"{QUEUE_PREFIX}{p}" for p in wanted]

    existing_in_order = [managed[name] for name in wanted_names if name in managed]
    in_order = all(a.priority < b.priority for a, b in itertools.pairwise(existing_in_order))
    missing = [name for name in wanted_names if name not in managed]

    reprioritise: list[tuple[Queue, int]] = []
    create: list[tuple[str, int]] = []
    if in_order and not missing:
        pass
    elif in_order and _appendable(wanted_names, managed):
        # New queues all rank below the existing ones: create them at the end.
        last = max((q.priority for q in existing_in_order), default=0)
        create = [(name, last + i) for i, name in enumerate(missing, start=1)]
    else:
        # Renumber every managed queue, in ascending order: a change can shift the queues
        # below it, so one that was right before may not be right after.
        for offset, name in enumerate(wanted_names):
            target = 1 + offset
            if name in managed:
                reprioritise.append((managed[name], target))
            else:
                create.append((name, target))
    keep = set(wanted_names) | set(in_use)
    delete = [q for name, q in managed.items() if name not in keep]
    return QueuePlan(create=create, reprioritise=reprioritise, delete=delete)


def _appendable(wanted_names: list[str], managed: Mapping[str, Queue]) -> bool:
    """Whether every missing queue comes after every existing one in the wanted order."""
    seen_missing = False
    for name in wanted_names:
        if name not in managed:
            seen_missing = True
        elif seen_missing:
            return False
    return True
