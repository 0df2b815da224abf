"""Properties (hypothesis) of validation and of the pure planner.

Validation: on any text, number or JSON, jobctl's checks return problems or raise
jobctl's own error, never anything else, and every message stays short.

The planner: for any rows and any state of Prefect, applying the plan (modelled from
the plan's own steps, with Prefect's upsert and queue-priority rules) and planning again
gives an empty plan, and leaves one deployment per good row, as the row wants it.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

import click
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from prefect.client.schemas.actions import DeploymentCreate
from prefect.client.schemas.schedules import CronSchedule

from deployments import plan, spec
from deployments import sync as schedule_sync
from jobctl import cron, errors, registry, validation
from jobctl.cli import parsing
from jobctl.errors import InvalidSchedule, Problem
from jobctl.fields import COLUMN_OF_FIELD, OVERLAP_POLICIES, RETRY_BACKOFFS
from jobctl.records import SPEC_FIELDS, InvalidJson, Schedule
from jobctl.repository import Repository
from jobctl.settings import Settings

pytestmark = pytest.mark.reliability

JOBS = tuple(registry.job_names())
AT = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # a DST day in Europe
# Short enough for a table cell or a log line, whatever the input was.
MAX_MESSAGE_CHARS = 400
PROBLEM_FIELDS = {*COLUMN_OF_FIELD.values(), "id"}

PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,  # the first example imports and warms caches
    database=None,  # no .hypothesis/ folder in the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies: anything a row, a request or a command line can carry --------------------

HUGE_INTS = st.sampled_from([2**31, -(2**31) - 1, 2**63, -(2**64), 10**30, 10**5000])
NUMBERS = st.one_of(
    st.integers(), HUGE_INTS, st.floats(allow_nan=True, allow_infinity=True), st.booleans()
)
TEXT = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=50),
    st.sampled_from(
        [
            "",
            "\x00",
            '\'; DROP TABLE "JobSchedule"; --',
            "[/]",
            "[bold]x[/bold]",
            "\u202eevil\u202c",  # right-to-left override
            "مرحبا",
            "🙂🚀",
            "x" * 100_000,
        ]
    ),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
ANYTHING = st.one_of(
    st.none(),
    NUMBERS,
    TEXT,
    JSON,
    st.builds(InvalidJson, st.text()),
    st.sampled_from([[[[[[]]]]], {"a": {"b": [float("nan")]}}, {1, 2}, b"bytes"]),
)

CRON_TOKENS = st.sampled_from(
    [
        "*", "*/5", "*/0", "0", "1", "7", "12", "23", "29", "30", "31", "59", "60", "61",
        "99999999999999999999", "-1", "1-5", "5-1", "1,2", "1-10/3", "?", "L", "1W", "5#2",
        "MON", "mon-fri", "JAN", "FEB", "R", "H", "H(0-5)", "0/0", "*/99", "", ",", "\uff10", "🙂",
    ]
)  # fmt: skip
CRON_LIKE = st.one_of(
    st.lists(CRON_TOKENS, min_size=1, max_size=8).map(" ".join),
    st.sampled_from(sorted(cron.ALIASES)).map(lambda alias: f"  {alias.upper()} "),
    st.sampled_from(["@reboot", "@every 5m", "0 0 30 2 *", "0 0 29 2 *", "0 0 31 4 1"]),
    TEXT,
)


def plausible_or_anything(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly values close to valid ones (so that some rows pass), sometimes anything."""
    return st.one_of(plausible, plausible, ANYTHING)


PARAMS = st.sampled_from([None, ["alpha"], "text", 2, 1.5, {"url": "http://127.0.0.1:9/"}])
SPEC_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "cron": plausible_or_anything(CRON_LIKE),
    "job_name": plausible_or_anything(st.sampled_from([*JOBS, "nope", "__init__"])),
    "param": plausible_or_anything(PARAMS),
    "is_active": plausible_or_anything(st.sampled_from([True, False, 0, 1, 2, "false"])),
    "description": plausible_or_anything(st.none() | TEXT),
    "priority": plausible_or_anything(st.none() | st.integers(-2, 20)),
    "timeout_ms": plausible_or_anything(st.none() | st.integers(-5, 2**31)),
    "max_retries": plausible_or_anything(st.none() | st.integers(-1, 101)),
    "timezone": plausible_or_anything(st.sampled_from([None, "UTC", "Europe/Berlin", "utc"])),
    "retry_delay_ms": plausible_or_anything(st.none() | st.integers(-1, 10**6)),
    "retry_backoff": plausible_or_anything(st.sampled_from([*RETRY_BACKOFFS, "linear"])),
    "overlap": plausible_or_anything(st.sampled_from([*OVERLAP_POLICIES, "cancel"])),
    "misfire_grace_ms": plausible_or_anything(st.none() | st.integers(-1, 10**6)),
    "alert_to": plausible_or_anything(st.sampled_from([None, "custom-webhook/ops", "ops", "/"])),
}
assert set(SPEC_VALUES) == set(SPEC_FIELDS)
IDS = st.one_of(
    st.uuids().map(str),
    st.sampled_from(["", "a/b", "100%", "a&b", "<x>", "a\x00b", "x" * 201, "🙂", "'; --"]),
    st.text(max_size=30),
)


@st.composite
def any_row(draw: st.DrawFn, schedule_id: str | None = None) -> Schedule:
    values = {name: draw(strategy) for name, strategy in SPEC_VALUES.items()}
    return Schedule(id=schedule_id if schedule_id is not None else draw(IDS), **values)


def assert_short(problems: Iterable[Problem]) -> None:
    for problem in problems:
        assert problem.field in PROBLEM_FIELDS, problem
        assert problem.message, problem
        assert len(str(problem)) <= MAX_MESSAGE_CHARS, str(problem)[:1000]


SYNC_SETTINGS = Settings(database_url="sqlite://", work_pool="pool", timezone="UTC")


@dataclass(frozen=True)
class RowsOnly:
    """The one method of ``Repository`` that ``desired_state`` calls."""

    rows: list[Schedule]

    def list_schedules(self) -> list[Schedule]:
        return list(self.rows)


def desired(rows: list[Schedule]) -> tuple[dict[str, spec.DeploymentSpec], dict[str, str]]:
    """The sync's own mapping of rows to specs and rejections (no database needed)."""
    return schedule_sync.desired_state(SYNC_SETTINGS, cast(Repository, RowsOnly(rows)))


# -- (a) validation never raises anything but its own error -------------------------------


@PROPERTY_SETTINGS
@given(expression=CRON_LIKE)
@example(expression="R * * * *")  # croniter takes them, Prefect does not
@example(expression="0 0 1W * *")
@example(expression="0 0 30 FEB 1")  # croniter: Mondays of February; Prefect: never
def test_normalize_cron_returns_a_cron_prefect_runs_or_raises_invalid_cron(expression: str):
    try:
        five = cron.normalize_cron(expression)
    except cron.InvalidCron as exc:
        assert str(exc)
        assert len(str(exc)) <= MAX_MESSAGE_CHARS, str(exc)[:1000]
        return
    assert cron.normalize_cron(five) == five  # normal form is a fixed point
    CronSchedule(cron=five, timezone="UTC")  # what the sync sends: Prefect takes it
    times = cron.next_fire_times(five, "Europe/Berlin", at=AT)  # what `schedule list` shows
    assert len(times) == 3
    assert all(time > AT for time in times)
    assert times == sorted(times)


@PROPERTY_SETTINGS
@given(row=any_row(), known=st.sampled_from([JOBS, frozenset(), ("processData",)]))
def test_validation_of_any_row_returns_short_problems_or_a_valid_spec(
    row: Schedule, known: Iterable[str]
):
    known_jobs = tuple(known)

    problems = validation.problems_of(row, known_jobs)

    assert_short(problems)
    try:
        checked = validation.validated(row, known_jobs)
    except InvalidSchedule as exc:
        assert exc.problems == problems
        assert problems, "validated() refused a row that problems_of() found no problem in"
        assert len(str(exc)) <= MAX_MESSAGE_CHARS * len(problems) + 50
        return
    assert problems == []
    assert isinstance(checked.is_active, bool)
    assert cron.normalize_cron(checked.cron) == checked.cron
    assert validation.problems_of(checked, known_jobs) == []  # validated rows stay valid


@PROPERTY_SETTINGS
@given(row=any_row())
def test_every_row_validation_accepts_maps_to_a_deployment_spec(row: Schedule):
    """A validated row never makes ``spec_for`` raise: that would stop the whole sync."""
    specs, rejected = desired([row])

    if row.id in rejected:
        reason = rejected[row.id]
        assert reason
        assert len(reason) <= MAX_MESSAGE_CHARS * len(PROBLEM_FIELDS), reason[:1000]
        assert specs == {}
        return
    (deployment,) = specs.values()
    assert deployment.name == spec.deployment_name(row.id)
    assert deployment.flow_name == row.job_name
    assert deployment.paused is not bool(row.is_active)
    assert deployment.version == deployment.config_hash()
    assert desired([row])[0] == specs  # deterministic: an unchanged row is never rewritten


@PROPERTY_SETTINGS
@given(schedule_id=IDS, row=any_row(schedule_id="fixed"))
def test_a_row_id_is_either_a_valid_deployment_name_or_a_short_problem(
    schedule_id: str, row: Schedule
):
    problems = validation.id_problems(schedule_id)

    assert_short(problems)
    if not problems:
        DeploymentCreate(
            name=spec.deployment_name(schedule_id),
            flow_id=UUID(int=1),
            tags=[f"{spec.SCHEDULE_TAG_PREFIX}{schedule_id}"],
        )
        assert spec.schedule_id_of([f"{spec.SCHEDULE_TAG_PREFIX}{schedule_id}"]) == schedule_id
    try:
        validation.validated(row, JOBS, schedule_id)
    except InvalidSchedule as exc:
        assert exc.schedule_id == schedule_id
        assert [p for p in exc.problems if p.field == "id"] == problems
    else:
        assert problems == []


CLI_TEXT = st.one_of(
    TEXT,
    st.from_regex(r"\A\s*\d{1,30}\s*[smhdw]\s*\Z"),
    st.sampled_from(["9" * 5000 + "s", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"]),
    st.datetimes().map(datetime.isoformat),
)


@PROPERTY_SETTINGS
@given(text=CLI_TEXT)
@example(text="99999999999d")  # beyond timedelta: was an OverflowError traceback
@example(text="9" * 5000 + "s")  # beyond int(): was a ValueError traceback
def test_command_line_values_parse_or_are_usage_errors(text: str):
    """``--param``, ``--older-than`` and ``--since``: click's BadParameter (exit code 2 and
    a usage line), never a traceback."""
    converters: list[Any] = [parsing.JSON, parsing.DURATION, parsing.INSTANT]
    for converter in converters:
        try:
            value = converter.convert(text, None, None)
        except click.BadParameter as exc:
            assert exc.format_message()
            continue
        if isinstance(value, datetime):
            assert value.tzinfo is not None  # compared with aware times in the database


# -- (b) the planner: applying a plan, then planning again, changes nothing -----------------


@dataclass
class ModelQueue:
    id: UUID
    priority: int


@dataclass
class PrefectModel:
    """Prefect's side of one pool, as the sync's calls change it.

    Deployments are keyed by (flow, name), as ``create_deployment`` upserts them; queue
    priorities follow the server's ``bulk_update_work_queue_priorities``: unique, and a
    queue set to a taken priority pushes the later ones down. A deployment whose queue is
    deleted leaves the pool, so a read of the pool no longer finds it.
    """

    pool_exists: bool
    deployments: dict[UUID, plan.Deployed] = field(default_factory=dict)
    queues: dict[str, ModelQueue] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self) -> UUID:
        return UUID(int=next(self.ids))

    def visible(self) -> list[plan.Deployed]:
        return [d for d in self.deployments.values() if d.work_queue_name in self.queues]

    def read_queues(self) -> list[plan.Queue]:
        return [plan.Queue(q.id, name, q.priority) for name, q in self.queues.items()]

    # -- queues, as the server does it --

    def _set_priority(self, name: str, target: int) -> None:
        prios = {n: q.priority for n, q in self.queues.items() if n != name}
        order = sorted(prios, key=prios.__getitem__)
        prios[name] = target
        at = next((i for i, n in enumerate(order) if prios[n] >= target), len(order))
        order.insert(at, name)
        last = 0
        for n in order:
            if prios[n] <= last:
                last += 1
                prios[n] = last
            else:
                last = prios[n]
        for n, priority in prios.items():
            self.queues[n].priority = priority

    def create_queue(self, name: str, priority: int | None) -> None:
        if name in self.queues:
            return  # ObjectAlreadyExists: the gateway goes on
        if priority is None:  # the first free priority
            taken = sorted(q.priority for q in self.queues.values())
            gaps = (i for i, p in enumerate(taken, start=1) if i != p)
            self.queues[name] = ModelQueue(self.new_id(), next(gaps, len(taken) + 1))
            return
        self.queues[name] = ModelQueue(self.new_id(), priority)
        self._set_priority(name, priority)

    # -- the sync's calls, in the order ``sync._apply`` makes them --

    def apply(self, sync_plan: plan.Plan) -> dict[str, UUID]:
        """Carry out ``sync_plan``; returns the ids of created or updated deployments."""
        if not self.pool_exists:  # ensure_work_pool: a new pool has its default queue
            self.pool_exists = True
            self.create_queue("default", None)
        queue_ids = {q.id: name for name, q in self.queues.items()}
        changes = [(p, "create", name) for name, p in sync_plan.queues.create] + [
            (p, "set", queue_ids[q.id]) for q, p in sync_plan.queues.reprioritise
        ]
        for priority, kind, name in sorted(changes, key=lambda change: change[0]):
            if kind == "create":
                self.create_queue(name, priority)
            else:
                self._set_priority(name, priority)
        written: dict[str, UUID] = {}
        for step in sorted(sync_plan.writes, key=lambda s: s.action is not plan.Action.DELETE):
            if step.action is plan.Action.DELETE:
                assert step.deployed is not None
                self.deployments.pop(step.deployed.id, None)
            elif step.action in (plan.Action.PAUSE, plan.Action.RESUME):
                assert step.deployed is not None
                assert step.deployed.id in self.deployments, f"{step}: no such deployment (404)"
                current = self.deployments[step.deployed.id]
                paused = step.action is plan.Action.PAUSE
                self.deployments[current.id] = dataclasses.replace(current, paused=paused)
            else:
                assert step.spec is not None
                written[step.schedule_id] = self.upsert(step.schedule_id, step.spec)
        for queue in sync_plan.queues.delete:
            del self.queues[queue_ids[queue.id]]
        return written

    def upsert(self, schedule_id: str, wanted: spec.DeploymentSpec) -> UUID:
        same = [d for d in self.deployments.values() if (d.flow_name, d.name) == (
            wanted.flow_name, wanted.name)]  # fmt: skip
        deployment_id = same[0].id if same else self.new_id()
        self.create_queue(wanted.work_queue_name, None)  # a missing queue is made on the fly
        self.deployments[deployment_id] = plan.Deployed(
            id=deployment_id,
            name=wanted.name,
            flow_name=wanted.flow_name,
            schedule_id=schedule_id,
            version=wanted.version,
            paused=wanted.paused,
            work_queue_name=wanted.work_queue_name,
        )
        return deployment_id


SCHEDULE_IDS = [f"row-{i}" for i in range(6)]
QUEUE_NAMES = [*(spec.queue_name(p) for p in (0, 1, 2, 5, 7)), "default", "other"]
# Rows close to real ones: valid by default, so that every action of the plan is reached.
ROW_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "cron": st.sampled_from(["*/5 * * * *", "0 0 1 1 *", "@daily", "0 0 0 * * *"]),
    "is_active": st.booleans(),
    "description": st.sampled_from([None, "d", "[/] 🙂"]),
    "priority": st.sampled_from([None, 0, 1, 2, 5, 7]),
    "timeout_ms": st.sampled_from([None, 0, 1_000]),
    "max_retries": st.sampled_from([None, 0, 3]),
    "timezone": st.sampled_from([None, "UTC", "Asia/Taipei"]),
    "retry_delay_ms": st.sampled_from([None, 1_000]),
    "retry_backoff": st.sampled_from(RETRY_BACKOFFS),
    "overlap": st.sampled_from(OVERLAP_POLICIES),
    "misfire_grace_ms": st.sampled_from([None, 0, 5_000]),
}
# Each makes a valid row invalid in one field.
BAD_VALUES: list[dict[str, Any]] = [
    {"cron": "61 * * * *"},
    {"job_name": "nope"},
    {"timeout_ms": -5},
    {"priority": -1},
    {"timezone": "Mars/Base"},
    {"param": {"not": "fitting any job but httpCall"}, "job_name": "processData"},
]
PARAM_CANDIDATES = [None, ["alpha"], "text", 2, 1.5, {"url": "http://127.0.0.1:9/"}]


def fitting_params(job_name: str) -> list[Any]:
    job = registry.get_job(job_name)
    fitting = []
    for candidate in PARAM_CANDIDATES:
        try:
            job.check_param(candidate)
        except errors.InvalidParam:
            continue
        fitting.append(candidate)
    return fitting or [None]


@st.composite
def a_job(draw: st.DrawFn) -> dict[str, Any]:
    job_name = draw(st.sampled_from(JOBS))
    return {"job_name": job_name, "param": draw(st.sampled_from(fitting_params(job_name)))}


@st.composite
def a_row(draw: st.DrawFn, schedule_id: str) -> Schedule:
    values = {name: draw(strategy) for name, strategy in ROW_VALUES.items()}
    row = Schedule(id=schedule_id, **values, **draw(a_job()))
    if draw(st.integers(0, 5)) == 0:
        row = changed(row, **draw(st.sampled_from(BAD_VALUES)))
    return row


def changed(row: Schedule, **changes: Any) -> Schedule:
    return dataclasses.replace(row, **changes)


EDITS = ["keep", "keep", "toggle", "priority", "job", "config", "break", "renew", "delete"]


@st.composite
def edited(draw: st.DrawFn, rows: list[Schedule]) -> list[Schedule]:
    """The next table: each row kept, edited, broken, renewed or deleted; rows added."""
    result: list[Schedule] = []
    for row in rows:
        what = draw(st.sampled_from(EDITS))
        if what == "keep":
            result.append(row)
        elif what == "toggle":
            result.append(changed(row, is_active=not row.is_active))
        elif what == "priority":
            result.append(changed(row, priority=draw(ROW_VALUES["priority"])))
        elif what == "job":
            result.append(changed(row, **draw(a_job())))
        elif what == "config":
            names = draw(st.lists(st.sampled_from(sorted(ROW_VALUES)), min_size=1, max_size=3))
            result.append(changed(row, **{name: draw(ROW_VALUES[name]) for name in names}))
        elif what == "break":
            result.append(changed(row, **draw(st.sampled_from(BAD_VALUES))))
        elif what == "renew":
            result.append(draw(a_row(row.id)))
    taken = {row.id for row in result}
    for schedule_id in draw(st.lists(st.sampled_from(SCHEDULE_IDS), unique=True, max_size=4)):
        if schedule_id not in taken:
            result.append(draw(a_row(schedule_id)))
    return result


@st.composite
def prefect_state(draw: st.DrawFn) -> PrefectModel:
    """Whatever a pool may hold: no pool yet, or queues in any order and deployments with
    stale versions, strays, duplicates on other flows and jobs that moved."""
    if not draw(st.booleans()):
        return PrefectModel(pool_exists=False)
    model = PrefectModel(pool_exists=True)
    names = draw(st.lists(st.sampled_from(QUEUE_NAMES), min_size=1, max_size=5, unique=True))
    priorities = draw(
        st.lists(st.integers(1, 12), min_size=len(names), max_size=len(names), unique=True)
    )
    for name, priority in zip(names, priorities, strict=True):
        model.queues[name] = ModelQueue(model.new_id(), priority)
    for _ in range(draw(st.integers(0, 6))):
        schedule_id = draw(st.sampled_from(SCHEDULE_IDS))
        flow_name = draw(st.sampled_from(JOBS))
        if any(
            (d.flow_name, d.schedule_id) == (flow_name, schedule_id)
            for d in model.deployments.values()
        ):
            continue  # Prefect holds one deployment per (flow, name)
        deployment_id = model.new_id()
        model.deployments[deployment_id] = plan.Deployed(
            id=deployment_id,
            name=spec.deployment_name(schedule_id),
            flow_name=flow_name,
            schedule_id=schedule_id,
            version=draw(st.sampled_from([None, "stale"])),
            paused=draw(st.booleans()),
            work_queue_name=draw(st.sampled_from(names)),
        )
    return model


def plan_against(
    model: PrefectModel, wanted: tuple[Mapping[str, spec.DeploymentSpec], Mapping[str, str]]
) -> plan.Plan:
    specs, rejected = wanted
    queues = model.read_queues() if model.pool_exists else []  # what the sync reads
    return plan.plan_sync(specs, rejected, model.visible(), queues)


def mirrored(deployments: Iterable[plan.Deployed]) -> set[tuple[Any, ...]]:
    return {
        (d.id, d.schedule_id, d.flow_name, d.version, d.paused, d.work_queue_name)
        for d in deployments
    }


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(initial=prefect_state(), data=st.data())
def test_planner_applying_its_plan_then_planning_again_gives_an_empty_plan(
    initial: PrefectModel, data: st.DataObject
):
    """For any sequence of tables and any starting pool: after each plan is applied, the
    next plan for the same rows is empty, and Prefect holds exactly what the rows want."""
    model = initial
    rows: list[Schedule] = []
    for _ in range(data.draw(st.integers(1, 4), label="tables")):
        rows = data.draw(edited(rows), label="table")
        specs, rejected = desired(rows)
        before = {d.id: d for d in model.visible()}

        first = plan_against(model, (specs, rejected))
        for step in first.steps:  # --hypothesis-show-statistics shows what was reached
            event(f"step: {step.action.value}")
        for kind in ("create", "reprioritise", "delete"):
            if getattr(first.queues, kind):
                event(f"queues: {kind}")
        written = model.apply(first)
        after = model.visible()

        again = plan_against(model, (specs, rejected))
        assert again.is_noop, [s for s in again.steps if s in again.writes] or again.queues
        # The sync's own account of Prefect afterwards (the watcher plans against it).
        assert mirrored(schedule_sync.deployed_after(first, written)) == mirrored(after)
        by_row: dict[str, list[plan.Deployed]] = {}
        for deployment in after:
            by_row.setdefault(deployment.schedule_id, []).append(deployment)
        assert set(by_row) <= set(specs) | set(rejected), "a deployment without its row"
        for schedule_id, wanted in specs.items():
            (deployment,) = by_row[schedule_id]
            assert (
                deployment.flow_name,
                deployment.version,
                deployment.paused,
                deployment.work_queue_name,
            ) == (wanted.flow_name, wanted.version, wanted.paused, wanted.work_queue_name)
        for schedule_id in rejected:
            kept = by_row.get(schedule_id, [])
            assert all(d.paused for d in kept), "a bad row's deployment still runs"
            assert all(d.id in before for d in kept), "a bad row got a new deployment"
        managed = sorted(
            (q.priority, name)
            for name, q in model.queues.items()
            if name.startswith(spec.QUEUE_PREFIX)
        )
        wanted_order = sorted({s.priority for s in specs.values()})
        in_order = [int(name.removeprefix(spec.QUEUE_PREFIX)) for _, name in managed]
        used = {d.work_queue_name for d in after}
        assert set(wanted_order) <= set(in_order)
        assert [p for p in in_order if p in wanted_order] == wanted_order, managed
        assert {spec.queue_name(p) for p in in_order} <= {
            spec.queue_name(p) for p in wanted_order
        } | used, "a queue no deployment uses is left"


def test_the_model_pushes_later_queues_down_like_prefect():
    """The model's queue rules, as in Prefect's docstring: taking a taken priority
    increments the queues from there on, as few as needed; no priority takes the first gap."""
    model = PrefectModel(pool_exists=True)
    for name, priority in (("a", 1), ("b", 2), ("c", 5)):
        model.create_queue(name, priority)

    model.create_queue("new", 2)
    model.create_queue("auto", None)

    assert {name: q.priority for name, q in model.queues.items()} == {
        "a": 1, "new": 2, "b": 3, "auto": 4, "c": 5,
    }  # fmt: skip
