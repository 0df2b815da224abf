"""Planning: the fewest changes that bring Prefect's deployments and queues to the rows."""

from __future__ import annotations

import dataclasses
import itertools
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any
from uuid import UUID

import pytest

from deployments import plan, spec
from jobctl import cron

Action = plan.Action
Step = plan.Step

FLOWS = ("processData", "httpCall", "sleep")
VERSIONS = ("v1", "v2", "v3")
REASON = "cron: '61 * * * *' is not a valid cron expression"


def make_spec(
    schedule_id: str,
    *,
    flow_name: str = "processData",
    version: str = "v1",
    paused: bool = False,
    priority: int = 0,
) -> spec.DeploymentSpec:
    return spec.DeploymentSpec(
        schedule_id=schedule_id,
        name=spec.deployment_name(schedule_id),
        flow_name=flow_name,
        entrypoint=f"flows/jobs.py:{flow_name}",
        cron="*/5 * * * *",
        timezone="UTC",
        parameters={"param": None},
        work_pool_name="jobctl",
        work_queue_name=spec.queue_name(priority),
        priority=priority,
        tags=[spec.MANAGED_TAG, f"job:{flow_name}", f"schedule:{schedule_id}"],
        description=None,
        paused=paused,
        job_variables={},
        concurrency_limit=None,
        collision_strategy=None,
        version=version,
    )


def make_deployed(
    schedule_id: str,
    *,
    flow_name: str = "processData",
    version: str | None = "v1",
    paused: bool = False,
    deployment_id: UUID | None = None,
    repeat_slugs: Iterable[str] = (),
) -> plan.Deployed:
    return plan.Deployed(
        id=deployment_id or uuid.uuid4(),
        name=spec.deployment_name(schedule_id),
        flow_name=flow_name,
        schedule_id=schedule_id,
        version=version,
        paused=paused,
        work_queue_name=spec.queue_name(0),
        repeat_slugs=frozenset(repeat_slugs),
    )


# -- plan_deployments: one row ---------------------------------------------------------------


def test_new_row_is_created():
    wanted = make_spec("a")

    assert plan.plan_deployments({"a": wanted}, {}, []) == [Step(Action.CREATE, "a", spec=wanted)]


@pytest.mark.parametrize("paused", [False, True])
def test_deployment_with_same_version_and_paused_is_unchanged(paused: bool):
    wanted = make_spec("a", version="v1", paused=paused)
    current = make_deployed("a", version="v1", paused=paused)

    assert plan.plan_deployments({"a": wanted}, {}, [current]) == [
        Step(Action.UNCHANGED, "a", spec=wanted, deployed=current)
    ]


@pytest.mark.parametrize("deployed_version", ["v1", None])
def test_deployment_with_another_version_is_updated(deployed_version: str | None):
    wanted = make_spec("a", version="v2")
    current = make_deployed("a", version=deployed_version)

    assert plan.plan_deployments({"a": wanted}, {}, [current]) == [
        Step(Action.UPDATE, "a", spec=wanted, deployed=current)
    ]


def test_update_carries_paused_when_version_and_paused_both_differ():
    wanted = make_spec("a", version="v2", paused=True)
    current = make_deployed("a", version="v1", paused=False)

    steps = plan.plan_deployments({"a": wanted}, {}, [current])

    assert steps == [Step(Action.UPDATE, "a", spec=wanted, deployed=current)]


@pytest.mark.parametrize(
    ("wanted_paused", "deployed_paused", "action"),
    [(True, False, Action.PAUSE), (False, True, Action.RESUME)],
)
def test_only_paused_differs_gives_pause_or_resume(
    wanted_paused: bool, deployed_paused: bool, action: Action
):
    wanted = make_spec("a", paused=wanted_paused)
    current = make_deployed("a", paused=deployed_paused)

    assert plan.plan_deployments({"a": wanted}, {}, [current]) == [
        Step(action, "a", spec=wanted, deployed=current)
    ]


def test_deployment_whose_row_is_gone_is_deleted():
    stray = make_deployed("gone")

    assert plan.plan_deployments({}, {}, [stray]) == [Step(Action.DELETE, "gone", deployed=stray)]


def test_job_change_deletes_the_old_deployment_and_creates_one_on_the_new_flow():
    wanted = make_spec("a", flow_name="httpCall")
    old = make_deployed("a", flow_name="processData")

    steps = plan.plan_deployments({"a": wanted}, {}, [old])

    assert len(steps) == 2
    assert Step(Action.DELETE, "a", deployed=old) in steps
    assert Step(Action.CREATE, "a", spec=wanted, moves_flow=True) in steps


@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize(
    ("deployed_version", "kept_action"), [("v1", Action.UNCHANGED), ("v0", Action.UPDATE)]
)
def test_duplicates_of_one_schedule_keep_the_one_on_the_right_flow(
    position: int, deployed_version: str, kept_action: Action
):
    wanted = make_spec("a", flow_name="processData", version="v1")
    right = make_deployed("a", flow_name="processData", version=deployed_version)
    wrong = [make_deployed("a", flow_name="httpCall"), make_deployed("a", flow_name="sleep")]
    deployed = [*wrong]
    deployed.insert(position, right)

    steps = plan.plan_deployments({"a": wanted}, {}, deployed)

    assert len(steps) == 3
    assert Step(kept_action, "a", spec=wanted, deployed=right) in steps
    for item in wrong:
        assert Step(Action.DELETE, "a", deployed=item) in steps


# -- plan_deployments: rejected rows ---------------------------------------------------------


def test_rejected_row_with_a_running_deployment_pauses_it_with_the_reason():
    current = make_deployed("a", paused=False)

    steps = plan.plan_deployments({}, {"a": REASON}, [current])

    assert steps == [Step(Action.PAUSE, "a", deployed=current, reason=REASON)]


def test_rejected_row_with_a_paused_deployment_is_rejected_without_a_write():
    current = make_deployed("a", paused=True)

    steps = plan.plan_deployments({}, {"a": REASON}, [current])

    assert steps == [Step(Action.REJECTED, "a", deployed=current, reason=REASON)]
    outcome = plan.Plan(steps=steps, queues=plan.QueuePlan())
    assert outcome.writes == []
    assert outcome.rejected == steps
    assert outcome.is_noop


def test_rejected_row_without_a_deployment_is_rejected():
    steps = plan.plan_deployments({}, {"a": REASON}, [])

    assert steps == [Step(Action.REJECTED, "a", reason=REASON)]
    assert steps[0].deployed is None


def test_rejected_row_pauses_every_running_deployment_and_deletes_none():
    running = make_deployed("a", flow_name="processData", paused=False)
    paused = make_deployed("a", flow_name="httpCall", paused=True)

    steps = plan.plan_deployments({}, {"a": REASON}, [running, paused])

    assert len(steps) == 2
    assert Step(Action.PAUSE, "a", deployed=running, reason=REASON) in steps
    assert Step(Action.REJECTED, "a", deployed=paused, reason=REASON) in steps


def test_every_row_and_every_stray_deployment_gets_a_step():
    steps = plan.plan_deployments(
        {"new": make_spec("new"), "same": make_spec("same")},
        {"bad": REASON},
        [make_deployed("same"), make_deployed("gone-1"), make_deployed("gone-2")],
    )

    assert sorted((s.schedule_id, s.action.value) for s in steps) == [
        ("bad", "rejected"),
        ("gone-1", "delete"),
        ("gone-2", "delete"),
        ("new", "create"),
        ("same", "unchanged"),
    ]


# -- Plan ------------------------------------------------------------------------------------


def test_plan_writes_are_every_step_but_unchanged_and_rejected():
    create = Step(Action.CREATE, "a", spec=make_spec("a"))
    update = Step(Action.UPDATE, "b", spec=make_spec("b"), deployed=make_deployed("b"))
    pause = Step(Action.PAUSE, "c", spec=make_spec("c"), deployed=make_deployed("c"))
    resume = Step(Action.RESUME, "d", spec=make_spec("d"), deployed=make_deployed("d"))
    delete = Step(Action.DELETE, "e", deployed=make_deployed("e"))
    unchanged = Step(Action.UNCHANGED, "f", spec=make_spec("f"), deployed=make_deployed("f"))
    rejected = Step(Action.REJECTED, "g", reason=REASON)

    outcome = plan.Plan(
        steps=[unchanged, create, rejected, update, pause, resume, delete],
        queues=plan.QueuePlan(),
    )

    assert outcome.writes == [create, update, pause, resume, delete]
    assert not outcome.is_noop


def test_plan_rejected_lists_every_step_with_a_reason_including_pauses():
    pause = Step(Action.PAUSE, "a", deployed=make_deployed("a"), reason=REASON)
    rejected = Step(Action.REJECTED, "b", reason="another reason")
    unchanged = Step(Action.UNCHANGED, "c", spec=make_spec("c"), deployed=make_deployed("c"))

    outcome = plan.Plan(steps=[pause, unchanged, rejected], queues=plan.QueuePlan())

    assert outcome.rejected == [pause, rejected]
    assert outcome.writes == [pause]


def test_plan_counts_steps_per_action():
    outcome = plan.Plan(
        steps=[
            Step(Action.CREATE, "a", spec=make_spec("a")),
            Step(Action.CREATE, "b", spec=make_spec("b")),
            Step(Action.DELETE, "c", deployed=make_deployed("c")),
            Step(Action.REJECTED, "d", reason=REASON),
        ],
        queues=plan.QueuePlan(),
    )

    assert outcome.counts() == Counter({Action.CREATE: 2, Action.DELETE: 1, Action.REJECTED: 1})


def test_plan_of_unchanged_and_rejected_steps_is_noop():
    outcome = plan.Plan(
        steps=[
            Step(Action.UNCHANGED, "a", spec=make_spec("a"), deployed=make_deployed("a")),
            Step(Action.REJECTED, "b", reason=REASON),
        ],
        queues=plan.QueuePlan(),
    )

    assert outcome.is_noop
    assert plan.Plan(steps=[], queues=plan.QueuePlan()).is_noop


QUEUE = plan.Queue(id=uuid.UUID(int=1), name="priority-3", priority=2)


@pytest.mark.parametrize(
    "queues",
    [
        pytest.param(plan.QueuePlan(create=[("priority-3", 1)]), id="create"),
        pytest.param(plan.QueuePlan(reprioritise=[(QUEUE, 1)]), id="reprioritise"),
        pytest.param(plan.QueuePlan(delete=[QUEUE]), id="delete"),
    ],
)
def test_plan_with_only_queue_changes_is_not_noop(queues: plan.QueuePlan):
    outcome = plan.Plan(steps=[], queues=queues)

    assert not queues.is_empty
    assert not outcome.is_noop
    assert outcome.writes == []


# -- plan_deployments: applying a plan converges ---------------------------------------------


def apply_steps(
    steps: Iterable[plan.Step], deployments: dict[UUID, plan.Deployed], rng: random.Random
) -> dict[UUID, plan.Deployed]:
    """Prefect's deployments after ``steps``, applied as the sync does: deletions first.

    Create and update take the spec's version and paused; pause and resume flip paused.
    """
    result = dict(deployments)
    ordered = sorted(steps, key=lambda s: s.action is not Action.DELETE)
    for step in ordered:
        if step.action is Action.CREATE:
            assert step.spec is not None
            wanted = step.spec
            clash = [
                d
                for d in result.values()
                if (d.flow_name, d.name) == (wanted.flow_name, wanted.name)
            ]
            assert not clash, f"Prefect would upsert over {clash}: a create must target a free name"
            new_id = UUID(int=rng.getrandbits(128))
            result[new_id] = plan.Deployed(
                id=new_id,
                name=wanted.name,
                flow_name=wanted.flow_name,
                schedule_id=step.schedule_id,
                version=wanted.version,
                paused=wanted.paused,
                work_queue_name=wanted.work_queue_name,
            )
        elif step.action is Action.UPDATE:
            assert step.spec is not None and step.deployed is not None
            current = result[step.deployed.id]
            assert current.flow_name == step.spec.flow_name, "an update stays on its flow"
            result[current.id] = dataclasses.replace(
                current,
                version=step.spec.version,
                paused=step.spec.paused,
                work_queue_name=step.spec.work_queue_name,
            )
        elif step.action in (Action.PAUSE, Action.RESUME):
            assert step.deployed is not None
            current = result[step.deployed.id]
            result[current.id] = dataclasses.replace(current, paused=not current.paused)
        elif step.action is Action.DELETE:
            assert step.deployed is not None
            del result[step.deployed.id]
    return result


def random_deployment_scenario(
    rng: random.Random,
) -> tuple[dict[str, spec.DeploymentSpec], dict[str, str], dict[UUID, plan.Deployed]]:
    """Rows, rejected rows and Prefect's deployments, with strays, duplicates and job changes."""
    specs: dict[str, spec.DeploymentSpec] = {}
    rejected: dict[str, str] = {}
    deployed: dict[UUID, plan.Deployed] = {}
    for schedule_id in (f"s{i}" for i in range(8)):
        kind = rng.choice(("row", "row", "rejected", "gone"))
        if kind == "row":
            specs[schedule_id] = make_spec(
                schedule_id,
                flow_name=rng.choice(FLOWS),
                version=rng.choice(VERSIONS),
                paused=rng.random() < 0.3,
                priority=rng.randrange(3),
            )
        elif kind == "rejected":
            rejected[schedule_id] = f"{schedule_id} is invalid"
        # Prefect holds at most one deployment per (flow, name).
        for flow_name in rng.sample(FLOWS, k=rng.choice((0, 0, 1, 1, 1, 2, 3))):
            item = make_deployed(
                schedule_id,
                flow_name=flow_name,
                version=rng.choice((*VERSIONS, None)),
                paused=rng.random() < 0.5,
                deployment_id=UUID(int=rng.getrandbits(128)),
            )
            deployed[item.id] = item
    return specs, rejected, deployed


def test_apply_steps_simulates_every_write():
    rng = random.Random(0)
    kept = make_deployed("keep", version="v1", paused=False)
    paused = make_deployed("pause", paused=False)
    gone = make_deployed("gone")
    wanted = make_spec("new", version="v9", paused=True)
    steps = [
        Step(Action.UPDATE, "keep", spec=make_spec("keep", version="v2"), deployed=kept),
        Step(Action.PAUSE, "pause", deployed=paused, reason=REASON),
        Step(Action.DELETE, "gone", deployed=gone),
        Step(Action.CREATE, "new", spec=wanted),
    ]

    after = apply_steps(steps, {d.id: d for d in (kept, paused, gone)}, rng)

    assert gone.id not in after
    assert after[kept.id].version == "v2"
    assert after[paused.id].paused
    (created,) = [d for d in after.values() if d.schedule_id == "new"]
    assert (created.flow_name, created.version, created.paused) == ("processData", "v9", True)


@pytest.mark.parametrize("seed", range(200))
def test_applying_a_deployment_plan_then_planning_again_gives_no_writes(seed: int):
    rng = random.Random(seed)
    specs, rejected, deployed = random_deployment_scenario(rng)

    first = plan.plan_deployments(specs, rejected, deployed.values())
    after = apply_steps(first, deployed, rng)

    for schedule_id, wanted in specs.items():
        (mirror,) = [d for d in after.values() if d.schedule_id == schedule_id]
        assert (mirror.flow_name, mirror.version, mirror.paused) == (
            wanted.flow_name,
            wanted.version,
            wanted.paused,
        )
    for schedule_id in rejected:
        before = {d.id for d in deployed.values() if d.schedule_id == schedule_id}
        remaining = [d for d in after.values() if d.schedule_id == schedule_id]
        assert {d.id for d in remaining} == before, "a rejected row's deployments are kept"
        assert all(d.paused for d in remaining)
    assert {d.schedule_id for d in after.values()} <= set(specs) | set(rejected)

    second = plan.plan_deployments(specs, rejected, after.values())
    assert plan.Plan(steps=second, queues=plan.QueuePlan()).writes == []


# -- plan_queues -----------------------------------------------------------------------------


def make_queue(name: str, priority: int) -> plan.Queue:
    return plan.Queue(id=uuid.uuid4(), name=name, priority=priority)


def row_priority(queue_name: str) -> int:
    return int(queue_name.removeprefix(spec.QUEUE_PREFIX))


def targets_in_row_order(queues: plan.QueuePlan) -> list[int]:
    """The planned Prefect priorities of created and renumbered queues, by row priority."""
    targets = dict(queues.create) | {q.name: target for q, target in queues.reprioritise}
    return [targets[name] for name in sorted(targets, key=row_priority)]


def test_empty_pool_gets_one_queue_per_distinct_priority_in_ascending_order():
    queues = plan.plan_queues([5, 0, 2, 5, 0], [])

    assert queues.create == [("priority-0", 1), ("priority-2", 2), ("priority-5", 3)]
    assert queues.reprioritise == []
    assert queues.delete == []


def test_no_priorities_and_no_queues_is_an_empty_plan():
    assert plan.plan_queues([], []).is_empty


def test_queues_already_in_order_give_an_empty_plan():
    current = [
        make_queue("priority-0", 1),
        make_queue("default", 2),
        make_queue("priority-2", 4),
        make_queue("priority-5", 7),
    ]

    assert plan.plan_queues([0, 2, 5], current).is_empty


def test_new_lowest_urgency_priority_is_appended_without_renumbering():
    current = [make_queue("priority-0", 1), make_queue("priority-2", 2), make_queue("default", 3)]

    queues = plan.plan_queues([0, 2, 9], current)

    assert queues.create == [("priority-9", 3)]
    assert queues.reprioritise == []
    assert queues.delete == []


def test_several_new_lowest_urgency_priorities_are_appended_in_order():
    current = [make_queue("priority-1", 4)]

    queues = plan.plan_queues([1, 7, 3], current)

    assert queues.create == [("priority-3", 5), ("priority-7", 6)]
    assert queues.reprioritise == []


def test_new_priority_in_the_middle_renumbers_every_managed_queue():
    zero, five = make_queue("priority-0", 1), make_queue("priority-5", 2)
    current = [zero, five, make_queue("default", 3)]

    queues = plan.plan_queues([0, 2, 5], current)

    assert queues.create == [("priority-2", 2)]
    assert queues.reprioritise == [(zero, 1), (five, 3)]
    assert targets_in_row_order(queues) == [1, 2, 3]


def test_new_highest_urgency_priority_renumbers_every_managed_queue():
    three, five = make_queue("priority-3", 1), make_queue("priority-5", 2)

    queues = plan.plan_queues([1, 3, 5], [three, five])

    assert queues.create == [("priority-1", 1)]
    assert queues.reprioritise == [(three, 2), (five, 3)]


def test_managed_queues_out_of_order_are_renumbered():
    zero, two = make_queue("priority-0", 5), make_queue("priority-2", 3)

    queues = plan.plan_queues([0, 2], [zero, two])

    assert queues.create == []
    assert queues.reprioritise == [(zero, 1), (two, 2)]


def test_unused_managed_queue_is_deleted():
    unused = make_queue("priority-7", 2)

    queues = plan.plan_queues([0], [make_queue("priority-0", 1), unused])

    assert queues.delete == [unused]


def test_unused_managed_queue_named_in_use_is_kept():
    current = [make_queue("priority-0", 1), make_queue("priority-7", 2)]

    assert plan.plan_queues([0], current, in_use=["priority-7"]).is_empty


@pytest.mark.parametrize("wanted", [[], [0], [3, 1], [0, 2, 5]])
def test_queues_not_named_priority_are_never_touched(wanted: list[int]):
    current = [
        make_queue("default", 1),
        make_queue("urgent", 2),
        make_queue("priority-5", 3),
        make_queue("priority-0", 4),
        make_queue("priorityx", 5),
    ]

    queues = plan.plan_queues(wanted, current)

    named = (
        [name for name, _ in queues.create]
        + [q.name for q, _ in queues.reprioritise]
        + [q.name for q in queues.delete]
    )
    assert all(name.startswith(spec.QUEUE_PREFIX) for name in named)


# -- plan_queues: applying a plan by Prefect's rules converges --------------------------------


@dataclasses.dataclass
class PoolQueue:
    id: UUID
    name: str
    priority: int


class Pool:
    """A work pool's queues, renumbered as Prefect's server does.

    ``prefect/server/models/workers.py::bulk_update_work_queue_priorities``: the updated queue
    is inserted before the first queue whose priority is at least its target, then every
    queue that is not above the one before it is bumped to that one + 1. Creating a queue
    with a priority runs the same update.
    """

    def __init__(self, queues: Iterable[plan.Queue]) -> None:
        self.queues = {q.id: PoolQueue(q.id, q.name, q.priority) for q in queues}

    def snapshot(self) -> list[plan.Queue]:
        ordered = sorted(self.queues.values(), key=lambda q: q.priority)
        return [plan.Queue(id=q.id, name=q.name, priority=q.priority) for q in ordered]

    def priorities(self) -> dict[str, int]:
        return {q.name: q.priority for q in self.queues.values()}

    def create(self, name: str, priority: int) -> None:
        assert name not in self.priorities(), f"queue {name} already exists"
        queue = PoolQueue(uuid.uuid4(), name, priority)
        self.queues[queue.id] = queue
        self.set_priority(queue.id, priority)

    def set_priority(self, queue_id: UUID, target: int) -> None:
        assert target >= 1
        moved = self.queues[queue_id]
        others = sorted(
            (q for q in self.queues.values() if q.id != queue_id), key=lambda q: q.priority
        )
        moved.priority = target
        for index, queue in enumerate(others):
            if queue.priority >= target:
                others.insert(index, moved)
                break
        last = 0
        for queue in others:
            if queue.priority <= last:
                last += 1
                queue.priority = last
            else:
                last = queue.priority
        values = [q.priority for q in self.queues.values()]
        assert len(values) == len(set(values)), "Prefect keeps priorities unique"

    def delete(self, queue_id: UUID) -> None:
        del self.queues[queue_id]

    def apply(self, queues: plan.QueuePlan) -> None:
        """As the sync does: creations and renumberings by ascending target, deletions last."""
        changes: list[tuple[int, Callable[[], None]]] = [
            *((p, partial(self.create, name, p)) for name, p in queues.create),
            *((p, partial(self.set_priority, q.id, p)) for q, p in queues.reprioritise),
        ]
        for _, change in sorted(changes, key=lambda item: item[0]):
            change()
        for queue in queues.delete:
            self.delete(queue.id)


def test_pool_moving_a_queue_up_bumps_the_ones_it_passes():
    pool = Pool([make_queue("a", 1), make_queue("b", 2), make_queue("c", 3)])
    (c,) = [q for q in pool.snapshot() if q.name == "c"]

    pool.set_priority(c.id, 1)

    assert pool.priorities() == {"c": 1, "a": 2, "b": 3}


def test_pool_target_beyond_every_queue_leaves_the_others_alone():
    pool = Pool([make_queue("a", 1), make_queue("b", 2), make_queue("c", 3)])
    (a,) = [q for q in pool.snapshot() if q.name == "a"]

    pool.set_priority(a.id, 9)

    assert pool.priorities() == {"a": 9, "b": 2, "c": 3}


def test_pool_create_at_a_taken_priority_bumps_only_the_colliding_run():
    pool = Pool([make_queue("a", 1), make_queue("b", 2), make_queue("c", 3), make_queue("d", 7)])

    pool.create("new", 2)

    assert pool.priorities() == {"a": 1, "new": 2, "b": 3, "c": 4, "d": 7}


def test_pool_create_in_a_gap_moves_nothing():
    pool = Pool([make_queue("a", 1), make_queue("b", 5)])

    pool.create("new", 3)

    assert pool.priorities() == {"a": 1, "new": 3, "b": 5}


def random_queue_scenario(rng: random.Random) -> tuple[list[int], list[plan.Queue], set[str]]:
    """Wanted row priorities, a pool (with unmanaged queues) and the names still in use."""
    names = [f"priority-{p}" for p in rng.sample(range(8), k=rng.randint(0, 6))]
    if rng.random() < 0.7:
        names.append("default")
    if rng.random() < 0.3:
        names.append("urgent")
    rng.shuffle(names)
    priorities = rng.sample(range(1, 2 * len(names) + 2), k=len(names))
    current = [
        plan.Queue(id=UUID(int=rng.getrandbits(128)), name=name, priority=priority)
        for name, priority in zip(names, priorities, strict=True)
    ]
    wanted = [rng.randrange(8) for _ in range(rng.randint(0, 10))]
    in_use = {n for n in names if n.startswith(spec.QUEUE_PREFIX) and rng.random() < 0.2}
    return wanted, current, in_use


@pytest.mark.parametrize("seed", range(300))
def test_queue_plan_applied_by_prefect_rules_orders_the_queues_and_converges(seed: int):
    rng = random.Random(seed)
    wanted, current, in_use = random_queue_scenario(rng)
    unmanaged = {q.name for q in current if not q.name.startswith(spec.QUEUE_PREFIX)}
    managed = {q.name for q in current} - unmanaged
    pool = Pool(current)

    first = plan.plan_queues(wanted, pool.snapshot(), in_use)
    touched = (
        [name for name, _ in first.create]
        + [q.name for q, _ in first.reprioritise]
        + [q.name for q in first.delete]
    )
    assert not unmanaged & set(touched)
    pool.apply(first)

    after = pool.priorities()
    wanted_names = [spec.queue_name(p) for p in sorted(set(wanted))]
    in_row_order = [after[name] for name in wanted_names]
    assert all(a < b for a, b in itertools.pairwise(in_row_order)), after
    assert {n for n in after if n.startswith(spec.QUEUE_PREFIX)} == set(wanted_names) | (
        in_use & managed
    )
    assert {n for n in after if not n.startswith(spec.QUEUE_PREFIX)} == unmanaged

    second = plan.plan_queues(wanted, pool.snapshot(), in_use)
    assert second.is_empty, (after, second)


# -- repeat schedules (DST fall-back) ---------------------------------------------------

NOW = datetime(2026, 12, 1, tzinfo=UTC)
REPEATS_2026 = cron.repeat_schedules("*/15 * * * 0", "Europe/Berlin", NOW)  # 2027, 2028
REPEATS_2028 = cron.repeat_schedules(
    "*/15 * * * 0", "Europe/Berlin", datetime(2028, 1, 1, tzinfo=UTC)
)
SLUGS_2027, SLUGS_2028 = REPEATS_2026[0].slug, REPEATS_2026[1].slug
SLUG_2029 = REPEATS_2028[1].slug


def with_repeats(wanted: spec.DeploymentSpec, repeats: tuple[Any, ...]) -> spec.DeploymentSpec:
    return dataclasses.replace(wanted, repeats=repeats)


def test_missing_repeat_schedules_are_added_without_rewriting_the_deployment():
    wanted = with_repeats(make_spec("a"), REPEATS_2026)
    current = make_deployed("a", repeat_slugs={SLUGS_2027})

    steps = plan.plan_deployments({"a": wanted}, {}, [current], NOW)

    assert steps == [Step(Action.EXTEND, "a", spec=wanted, deployed=current)]


def test_deployment_with_every_wanted_repeat_schedule_is_unchanged():
    wanted = with_repeats(make_spec("a"), REPEATS_2026)
    current = make_deployed("a", repeat_slugs={SLUGS_2027, SLUGS_2028})

    steps = plan.plan_deployments({"a": wanted}, {}, [current], NOW)

    assert steps == [Step(Action.UNCHANGED, "a", spec=wanted, deployed=current)]


def test_repeat_schedules_of_past_fall_backs_are_left_in_place():
    # A year on: 2027's schedule never fires again; removing it would delete future runs.
    later = datetime(2028, 1, 1, tzinfo=UTC)
    wanted = with_repeats(make_spec("a"), REPEATS_2028)
    current = make_deployed("a", repeat_slugs={SLUGS_2027, SLUGS_2028, SLUG_2029})

    steps = plan.plan_deployments({"a": wanted}, {}, [current], later)

    assert steps == [Step(Action.UNCHANGED, "a", spec=wanted, deployed=current)]


def test_the_year_after_a_fall_back_the_next_one_is_added():
    later = datetime(2028, 1, 1, tzinfo=UTC)
    wanted = with_repeats(make_spec("a"), REPEATS_2028)
    current = make_deployed("a", repeat_slugs={SLUGS_2027, SLUGS_2028})

    steps = plan.plan_deployments({"a": wanted}, {}, [current], later)

    assert steps == [Step(Action.EXTEND, "a", spec=wanted, deployed=current)]


def test_an_unwanted_repeat_schedule_still_to_come_makes_an_update():
    # The zone's rules changed, or the row no longer covers every hour.
    wanted = make_spec("a")
    current = make_deployed("a", repeat_slugs={SLUGS_2027})

    assert plan.plan_deployments({"a": wanted}, {}, [current], NOW) == [
        Step(Action.UPDATE, "a", spec=wanted, deployed=current)
    ]
    # Without ``now`` nothing can be told expired: every unwanted one counts as live.
    assert plan.plan_deployments({"a": wanted}, {}, [current])[0].action is Action.UPDATE


def test_extend_and_resume_together_make_one_update():
    wanted = with_repeats(make_spec("a", paused=False), REPEATS_2026)
    current = make_deployed("a", paused=True)

    steps = plan.plan_deployments({"a": wanted}, {}, [current], NOW)

    assert steps == [Step(Action.UPDATE, "a", spec=wanted, deployed=current)]


def test_extend_is_a_write_and_plan_sync_passes_now_on():
    wanted = with_repeats(make_spec("a"), REPEATS_2026)
    current = make_deployed("a")

    sync_plan = plan.plan_sync({"a": wanted}, {}, [current], [], NOW)

    assert [s.action for s in sync_plan.writes] == [Action.EXTEND]


# -- maintenance pause -----------------------------------------------------------------------


def _actions(steps: list[Step]) -> dict[str, Action]:
    return {step.schedule_id: step.action for step in steps}


def test_a_maintenance_pause_pauses_every_running_deployment_and_leaves_paused_ones() -> None:
    specs = {"a": make_spec("a"), "b": make_spec("b"), "off": make_spec("off", paused=True)}
    deployed = [make_deployed("a"), make_deployed("b"), make_deployed("off", paused=True)]

    steps = plan.plan_deployments(specs, {}, deployed, maintenance=True)

    assert _actions(steps) == {"a": Action.PAUSE, "b": Action.PAUSE, "off": Action.UNCHANGED}


def test_a_resync_during_a_maintenance_pause_writes_nothing() -> None:
    specs = {"a": make_spec("a"), "off": make_spec("off", paused=True)}
    deployed = [make_deployed("a", paused=True), make_deployed("off", paused=True)]

    steps = plan.plan_deployments(specs, {}, deployed, maintenance=True)

    assert all(step.action is Action.UNCHANGED for step in steps)


def test_a_row_edited_during_a_maintenance_pause_is_updated_still_paused() -> None:
    specs = {"a": make_spec("a", version="v2"), "new": make_spec("new")}
    deployed = [make_deployed("a", version="v1", paused=True)]

    steps = {s.schedule_id: s for s in plan.plan_deployments(specs, {}, deployed, maintenance=True)}

    assert steps["a"].action is Action.UPDATE and steps["a"].spec is not None
    assert steps["a"].spec.paused and steps["a"].spec.version == "v2"
    assert steps["new"].action is Action.CREATE and steps["new"].spec is not None
    assert steps["new"].spec.paused


def test_the_end_of_a_maintenance_pause_resumes_exactly_the_active_rows() -> None:
    specs = {"a": make_spec("a"), "b": make_spec("b"), "off": make_spec("off", paused=True)}
    deployed = [make_deployed(i, paused=True) for i in ("a", "b", "off")]

    steps = plan.plan_deployments(specs, {}, deployed, maintenance=False)

    assert _actions(steps) == {"a": Action.RESUME, "b": Action.RESUME, "off": Action.UNCHANGED}
