"""DST days on a real Prefect server: its scheduler plans a year ahead, and the runs it
creates follow docs/schedules.md.

One server for the module, asked to plan 400 days ahead; each row names one local day
(a DST day of 2027) so that it makes about a hundred runs, not thirty thousand.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.plan import Action
from jobctl import cron, db, migrate
from jobctl.prefect.gateway.client import ClientGateway
from jobctl.records import ScheduleSpec
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.prefect import scratch_postgres_database
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.processes import wait_for
from tests.fixtures.sync import RequestLog, SyncTarget
from tests.fixtures.zygote import Zygote

RUNS_TIMEOUT_S = 180
READ_LIMIT = 200  # the most runs Prefect returns in one read, more than a DST day has
SCHEDULER_ENV = {
    # Plan every row's runs at once, however far ahead its day is.
    "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_SCHEDULED_TIME": "P400D",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_SCHEDULED_TIME": "P400D",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS": "500",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "500",
    # Plan again within seconds runs Prefect deleted with a schedule (the default loop is 60 s).
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
}
BERLIN, NEW_YORK, LORD_HOWE = "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"


@dataclass(frozen=True)
class Case:
    name: str
    cron: str
    zone: str
    day: date  # the local day the cron names
    runs: int  # how many runs that day has (docs/schedules.md)


CASES = [
    # Fall-back: clocks go back one hour (30 minutes on Lord Howe), so the day is longer.
    Case("berlin-fall-15min", "*/15 * 31 10 *", BERLIN, date(2027, 10, 31), 100),
    Case("berlin-fall-hourly", "30 * 31 10 *", BERLIN, date(2027, 10, 31), 25),
    Case("berlin-fall-fixed", "30 2 31 10 *", BERLIN, date(2027, 10, 31), 1),
    Case("new-york-fall-15min", "*/15 * 7 11 *", NEW_YORK, date(2027, 11, 7), 100),
    Case("new-york-fall-fixed", "30 1 7 11 *", NEW_YORK, date(2027, 11, 7), 1),
    Case("lord-howe-fall-15min", "*/15 * 4 4 *", LORD_HOWE, date(2027, 4, 4), 98),
    Case("lord-howe-fall-hourly", "30 * 4 4 *", LORD_HOWE, date(2027, 4, 4), 25),
    # Spring-forward: a shorter day; a skipped time fires after the gap.
    Case("berlin-spring-15min", "*/15 * 28 3 *", BERLIN, date(2027, 3, 28), 92),
    Case("berlin-spring-fixed", "30 2 28 3 *", BERLIN, date(2027, 3, 28), 1),
    Case("new-york-spring-hourly", "0 * 14 3 *", NEW_YORK, date(2027, 3, 14), 23),
    Case("lord-howe-spring-15min", "*/15 * 3 10 *", LORD_HOWE, date(2027, 10, 3), 94),
    Case("lord-howe-spring-hourly", "15 * 3 10 *", LORD_HOWE, date(2027, 10, 3), 24),
]
BY_NAME = {case.name: case for case in CASES}
# Every hour and no day restriction: one UTC schedule (jobctl.cron.utc_equivalent). Its
# runs reach MAX_RUNS (500) ten days ahead, long before a DST day: docs/schedules.md's
# rules for it are checked against Prefect's CronSchedule in tests/unit/test_cron.py.
UTC_ROW = Case("berlin-every-30min", "*/30 * * * *", BERLIN, date(2026, 12, 1), 500)
ROWS = [*CASES, UTC_ROW]


def expected_instants(case: Case) -> list[datetime]:
    """The policy of docs/schedules.md, computed from first principles (zoneinfo's fold):
    every wall time the cron names fires once, at its first occurrence (fold=0, which for
    a time skipped by spring-forward is the instant after the gap); a row whose hour field
    is ``*`` also fires at the second occurrence of a repeated wall time."""
    zone = ZoneInfo(case.zone)
    every_hour = case.cron.split()[1] == "*"
    instants: set[datetime] = set()
    wall = datetime.combine(case.day, time())
    while wall.date() == case.day:
        if croniter.match(case.cron, wall):
            first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
            instants.add(first.astimezone(UTC))
            first_offset, second_offset = first.utcoffset(), second.utcoffset()
            assert first_offset is not None and second_offset is not None
            if every_hour and first_offset > second_offset:  # repeated, not skipped
                instants.add(second.astimezone(UTC))
        wall += timedelta(minutes=1)
    return sorted(instants)


@dataclass
class Synced:
    target: SyncTarget
    ids: dict[str, str]  # case name -> row id
    runs: dict[str, list[datetime]]  # case name -> Prefect's scheduled runs, as created
    synced_at: datetime
    home: Path


@pytest.fixture(scope="module")
def prefect_server(
    tmp_path_factory: pytest.TempPathFactory, zygote: Zygote
) -> Iterator[PrefectServer]:
    """A server whose scheduler plans 400 days ahead (overrides the session server)."""
    with scratch_postgres_database() as database:
        home = tmp_path_factory.mktemp("prefect-dst")
        server = PrefectServer(home, database=database, env=SCHEDULER_ENV, zygote=zygote)
        try:
            server.start()
            with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                yield server
        finally:
            server.stop()


async def _scheduled_runs(deployment_ids: dict[str, UUID]) -> dict[str, list[datetime]]:
    async with get_client() as client:
        found: dict[str, list[datetime]] = {}
        for name, deployment_id in deployment_ids.items():
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
                    )
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=READ_LIMIT,
            )
            found[name] = [
                datetime.fromtimestamp(run.expected_start_time.timestamp(), UTC)
                for run in runs
                if run.expected_start_time is not None
            ]
        return found


@pytest.fixture(scope="module")
def synced(
    prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Synced]:
    home = tmp_path_factory.mktemp("dst")
    database_url = f"sqlite:///{home / 'jobctl.db'}"
    engine = db.create_db_engine(database_url)
    migrate.upgrade(engine)
    repository = Repository(engine)
    target = SyncTarget(
        settings=Settings(database_url=database_url, work_pool="jobctl-dst"),
        repository=repository,
        server=prefect_server,
    )
    ids = {
        case.name: repository.add_schedule(
            ScheduleSpec(cron=case.cron, job_name="processData", timezone=case.zone)
        ).id
        for case in ROWS
    }
    synced_at = datetime.now(UTC)
    report = target.sync()
    assert report.ok, report.failures
    deployments = target.deployments()
    deployment_ids = {name: deployments[row_id].id for name, row_id in ids.items()}

    previous: list[dict[str, list[datetime]]] = [{}]

    def all_planned() -> dict[str, list[datetime]] | None:
        """Prefect's runs once every deployment has some and a scheduler loop (5 s) added
        none: the tests then compare what is there, so that a wrong count fails them
        rather than this wait."""
        runs = asyncio.run(_scheduled_runs(deployment_ids))
        settled = all(runs.values()) and runs == previous[0]
        previous[0] = runs
        return runs if settled else None

    runs = wait_for(all_planned, timeout_s=RUNS_TIMEOUT_S, interval_s=6, what="runs planned")
    try:
        yield Synced(target, ids, runs, synced_at, home)
    finally:
        engine.dispose()


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_prefect_runs_each_dst_day_as_the_policy_says(synced: Synced, case: Case):
    runs = synced.runs[case.name]

    assert len(runs) == len(set(runs)), "two runs at one instant"
    assert runs == expected_instants(case)
    assert len(runs) == case.runs


@pytest.mark.parametrize(
    ("name", "per_hour", "hours"),
    [
        ("berlin-fall-15min", 4, 25),
        ("new-york-fall-15min", 4, 25),
        ("berlin-fall-hourly", 1, 25),
        ("berlin-spring-15min", 4, 23),
    ],
)
def test_a_row_of_every_hour_keeps_its_rhythm_in_every_real_hour(
    synced: Synced, name: str, per_hour: int, hours: int
):
    runs = synced.runs[name]
    per_real_hour = Counter(run.replace(minute=0) for run in runs)

    assert len(per_real_hour) == hours
    assert set(per_real_hour.values()) == {per_hour}
    assert {b - a for a, b in itertools.pairwise(runs)} == {timedelta(hours=1) / per_hour}


def test_a_row_of_every_hour_fires_through_a_30_minute_repeat(synced: Synced):
    runs = synced.runs["lord-howe-fall-15min"]

    # 01:30-01:59 local happens at +11, then at +10:30 (15:00-15:29 UTC).
    assert {b - a for a, b in itertools.pairwise(runs)} == {timedelta(minutes=15)}
    assert Counter(run.replace(minute=0) for run in runs)[datetime(2027, 4, 3, 15, tzinfo=UTC)] == 4


def test_a_fixed_hour_row_fires_once_at_the_first_occurrence(synced: Synced):
    assert synced.runs["berlin-fall-fixed"] == [datetime(2027, 10, 31, 0, 30, tzinfo=UTC)]
    assert synced.runs["new-york-fall-fixed"] == [datetime(2027, 11, 7, 5, 30, tzinfo=UTC)]
    assert synced.runs["berlin-spring-fixed"] == [datetime(2027, 3, 28, 1, 30, tzinfo=UTC)]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_schedule_list_computes_the_runs_prefect_created(synced: Synced, case: Case):
    runs = synced.runs[case.name]

    listed = cron.next_fire_times(case.cron, case.zone, at=synced.synced_at, count=len(runs))

    assert [t.astimezone(UTC) for t in listed] == runs


def test_schedule_show_prints_the_repeated_runs_prefect_created(synced: Synced):
    case = BY_NAME["lord-howe-fall-hourly"]
    env = cli_env(
        database_url=synced.target.settings.database_url,
        home=synced.home,
        pycache=synced.home / "pycache",
    )

    shown = run_cli("schedule", "show", synced.ids[case.name], env=env).stdout

    zone = ZoneInfo(case.zone)
    first_three = [
        run.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") for run in synced.runs[case.name][:3]
    ]
    assert first_three == ["2027-04-04 00:30 +11", "2027-04-04 01:30 +11", "2027-04-04 01:30 +1030"]
    assert all(line in shown for line in first_three), shown


def test_an_unchanged_resync_writes_nothing(synced: Synced):
    log = RequestLog()

    report = synced.target.sync(log=log)

    assert report.plan.counts() == {Action.UNCHANGED: len(ROWS)}
    assert log.writes == []


def test_a_missing_repeat_schedule_is_added_and_keeps_the_future_runs(synced: Synced):
    """What the sync does once a year, after a fall-back: add next year's schedule."""
    row_id = synced.ids["berlin-fall-hourly"]
    deployment = synced.target.deployments()[row_id]
    runs_before = asyncio.run(_run_ids(deployment.id))

    dropped = [
        schedule.id
        for schedule in deployment.schedules
        if (schedule.slug or "").startswith(cron.REPEAT_SLUG_PREFIX)
    ]

    async def drop_repeats() -> None:  # as a deployment synced before this fall-back was due
        async with get_client() as client:
            for schedule_id in dropped:
                await client.delete_deployment_schedule(deployment.id, schedule_id)

    async def delete_stale_runs() -> None:
        """Prefect's scheduler may insert a batch it read just before the deletion (CI at
        e80a7a4: 25 runs for 180 s): its runs, keyed ``scheduled <deployment> <schedule>
        <time>``, belong to no schedule of the deployment any more."""
        async with get_client() as client:
            for run in await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                limit=READ_LIMIT,
            ):
                if any(str(i) in (run.idempotency_key or "") for i in dropped):
                    await client.delete_flow_run(run.id)

    asyncio.run(drop_repeats())
    asyncio.run(delete_stale_runs())
    wanted = BY_NAME["berlin-fall-hourly"].runs - 1
    wait_for(
        lambda: (
            asyncio.run(delete_stale_runs())
            or len(asyncio.run(_scheduled_runs({"row": deployment.id}))["row"]) == wanted
        ),
        timeout_s=RUNS_TIMEOUT_S,
        interval_s=2,
        what=f"{wanted} runs planned",
    )
    runs_main = asyncio.run(_run_ids(deployment.id))
    assert runs_main != runs_before  # Prefect deleted and planned them again

    report = synced.target.sync()

    assert report.plan.counts() == {Action.EXTEND: 1, Action.UNCHANGED: len(ROWS) - 1}
    slugs = {s.slug for s in synced.target.deployments()[row_id].schedules}
    assert {r.slug for r in cron.repeat_schedules("30 * 31 10 *", BERLIN, synced.synced_at)} < slugs
    # Added, not rewritten: the main schedule's runs are still the same runs.
    assert runs_main <= asyncio.run(_run_ids(deployment.id))
    runs = asyncio.run(_wait_scheduled(deployment.id, BY_NAME["berlin-fall-hourly"].runs))
    assert runs == expected_instants(BY_NAME["berlin-fall-hourly"])
    assert synced.target.sync().plan.is_noop


async def _run_ids(deployment_id: UUID) -> set[UUID]:
    async with get_client() as client:
        runs = await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            limit=200,
        )
        return {run.id for run in runs}


async def _wait_scheduled(deployment_id: UUID, count: int) -> list[datetime]:
    deadline = asyncio.get_running_loop().time() + RUNS_TIMEOUT_S
    while True:
        runs = (await _scheduled_runs({"row": deployment_id}))["row"]
        if len(runs) == count:
            return runs
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{count} runs not planned within {RUNS_TIMEOUT_S}s: {len(runs)}")
        await asyncio.sleep(1)


def test_a_row_of_every_hour_without_day_restriction_runs_on_one_utc_schedule(synced: Synced):
    deployment = synced.target.deployments()[synced.ids[UTC_ROW.name]]
    runs = synced.runs[UTC_ROW.name]

    (schedule,) = deployment.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("*/30 * * * *", "UTC")  # type: ignore[union-attr]
    assert len(runs) == READ_LIMIT  # of 500: the first page is enough to compare
    listed = cron.next_fire_times(UTC_ROW.cron, UTC_ROW.zone, at=synced.synced_at, count=len(runs))
    assert [t.astimezone(UTC) for t in listed] == runs


def test_gateway_reads_the_repeat_schedules_it_wrote(synced: Synced):
    async def read() -> dict[str, frozenset[str]]:
        async with get_client() as client:
            deployed = await ClientGateway(client).read_managed_deployments("jobctl-dst")
        return {d.schedule_id: d.repeat_slugs for d in deployed}

    slugs = asyncio.run(read())

    for case in CASES:
        wanted = {r.slug for r in cron.repeat_schedules(case.cron, case.zone, synced.synced_at)}
        assert wanted <= slugs[synced.ids[case.name]], case.name
    assert slugs[synced.ids["berlin-fall-fixed"]] == frozenset()
