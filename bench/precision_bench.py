"""Precision: how late a cron run starts (start time - scheduled time), on Prefect's process
worker and on jobctl's warm worker side by side.

For each scenario (a worker type and a number of rows), on a fresh PostgreSQL-backed
``prefect server start`` and jobctl tables of its own:

1. ``rows`` rows ``* * * * *`` of ``processData`` added through ``Repository.add_schedule``
   and mirrored with ``deployments.sync.sync`` (so ``rows`` runs fall due in every minute);
2. one ``prefect worker start --type <process | jobctl-warm>`` on the pool, with jobctl's
   ``PREFECT_WORKER_QUERY_SECONDS`` / ``PREFECT_WORKER_PREFETCH_SECONDS``;
3. from the next minute boundary at least ``SETTLE_S`` after the worker is online, every
   auto-scheduled run whose scheduled time falls in the next ``minutes`` minutes:
   ``flow_run.start_time - flow_run.expected_start_time`` (the server's clock both), p50 /
   p95 / p99 / max. A run that never started counts as infinitely late;
4. the CPU seconds of the worker's process tree over the window (the worker, the warm
   template, every flow process, exited ones through their parent's ``cutime``), per run.

Also kept per run: how long before its scheduled time the scheduler had created it
(``expected_start_time - created``), which is what shows that the scheduler's loop
(``PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS``) plays no part in the lateness.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
)
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings
from rich.console import Console

from bench import harness, processes, report, throughput_bench
from bench.harness import Databases
from bench.processes import WorkerTuning
from bench.report import Line
from deployments.sync import sync
from jobctl.cli.stack import WORKER_TUNING
from jobctl.db import create_db_engine
from jobctl.prefect.gateway.client import ClientGateway
from jobctl.records import ScheduleSpec
from jobctl.repository import Repository
from jobctl.settings import Settings

NAME = "precision"
SETTLE_S = 20.0
FINISH_GRACE_S = 180.0
PAGE = 200
PROCESS, WARM = throughput_bench.PROCESS, throughput_bench.WARM
ANCHORS = (
    ("Temporal (published)", "schedules start within 1 s of their time"),
    ("Dagster (published)", "scheduled runs start 1-6 s late"),
)
_QUERY_S = float(WORKER_TUNING["PREFECT_WORKER_QUERY_SECONDS"])
_PREFETCH_S = float(WORKER_TUNING["PREFECT_WORKER_PREFETCH_SECONDS"])
TUNING = WorkerTuning(query_s=_QUERY_S, prefetch_s=_PREFETCH_S)


@dataclass(frozen=True)
class Scenario:
    worker_type: str
    rows: int
    minutes: int
    p99_target_s: float | None = None  # the warm worker's targets; the process worker's beside

    @property
    def name(self) -> str:
        return f"{self.worker_type}, {self.rows} runs a minute"


@dataclass(frozen=True)
class Config:
    scenarios: tuple[Scenario, ...]


FULL = Config(
    (
        Scenario(WARM, 20, 3, 1.0),
        Scenario(PROCESS, 20, 3),
        Scenario(WARM, 60, 2, 5.0),
        Scenario(PROCESS, 60, 2),
    )
)
QUICK = Config((Scenario(WARM, 10, 1, 1.0), Scenario(PROCESS, 10, 1)))


@dataclass
class Outcome:
    scenario: Scenario
    lateness_s: list[float]
    never_started: int
    states: dict[str, int]
    lead_s: list[float]
    window: tuple[datetime, datetime]
    load_before: dict[str, float]
    load_after: dict[str, float]
    worker_cpu_s: float = 0.0

    @property
    def runs(self) -> int:
        return len(self.lateness_s) + self.never_started

    def quantile(self, q: float) -> float:
        values = self.lateness_s + [math.inf] * self.never_started
        return harness.percentile(values, q)

    def lines(self) -> list[Line]:
        p99 = self.quantile(99)
        target = self.scenario.p99_target_s
        note = (
            f"{processes.load_text(self.load_before)} before, "
            f"{processes.load_text(self.load_after)} after"
        )
        return [
            Line(f"{self.scenario.name}: runs measured", self.runs, "runs"),
            Line("  start - scheduled, p50", self.quantile(50), "s"),
            Line("  start - scheduled, p95", self.quantile(95), "s"),
            Line(
                "  start - scheduled, p99",
                p99,
                "s",
                f"≤ {target:g} s" if target is not None else None,
                p99 <= target if target is not None else None,
                note,
            ),
            Line("  start - scheduled, max", self.quantile(100), "s"),
            Line("  worker + flow processes, CPU per run", self.cpu_per_run(), "s"),
            Line("  runs created ahead of their time, min", min(self.lead_s, default=None), "s"),
        ]

    def cpu_per_run(self) -> float | None:
        return self.worker_cpu_s / self.runs if self.runs else None

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "worker_type": self.scenario.worker_type,
            "rows": self.scenario.rows,
            "minutes": self.scenario.minutes,
            "worker_env": TUNING.env(),
            "window": [moment.isoformat() for moment in self.window],
            "runs": self.runs,
            "never_started": self.never_started,
            "states": self.states,
            "p50_s": self.quantile(50),
            "p95_s": self.quantile(95),
            "p99_s": self.quantile(99),
            "max_s": self.quantile(100),
            "worker_tree_cpu_s": round(self.worker_cpu_s, 3),
            "worker_tree_cpu_per_run_s": self.cpu_per_run(),
            "lateness_s": sorted(round(value, 4) for value in self.lateness_s),
            "created_ahead_s_min": round(min(self.lead_s), 1) if self.lead_s else None,
            "load_before": self.load_before,
            "load_after": self.load_after,
        }


def add_rows(repository: Repository, rows: int) -> None:
    for index in range(rows):
        repository.add_schedule(
            ScheduleSpec(
                cron="* * * * *",
                job_name="processData",
                param=["precision", str(index)],
                description=f"precision bench row {index}",
                max_retries=0,
            )
        )


async def deployment_ids(settings: Settings) -> list[uuid.UUID]:
    engine = create_db_engine(settings.database_url)
    try:
        async with get_client() as client:
            done = await sync(settings, Repository(engine), ClientGateway(client))
            if not done.ok:
                raise RuntimeError(f"the sync failed: {done.summary()}")
            deployed = await ClientGateway(client).read_managed_deployments(settings.work_pool)
    finally:
        engine.dispose()
    return [item.id for item in deployed]


async def runs_in(ids: list[uuid.UUID], start: datetime, end: datetime) -> list[FlowRun]:
    found: list[FlowRun] = []
    async with get_client() as client:
        while True:
            page = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids)),
                flow_run_filter=FlowRunFilter(
                    expected_start_time=FlowRunFilterExpectedStartTime(
                        after_=start, before_=end - timedelta(microseconds=1)
                    )
                ),
                limit=PAGE,
                offset=len(found),
            )
            found += page
            if len(page) < PAGE:
                return found


def next_minute(after: datetime) -> datetime:
    return after.replace(second=0, microsecond=0) + timedelta(minutes=1)


def measure(databases: Databases, scenario: Scenario, console: Console) -> Outcome:
    tables = databases.create_migrated("precision")
    url = harness.psycopg_url(tables)
    settings = Settings(database_url=url, work_pool=f"bench-precision-{uuid.uuid4().hex[:6]}")
    engine = create_db_engine(url)
    try:
        add_rows(Repository(engine), scenario.rows)
    finally:
        engine.dispose()
    name = scenario.name
    with (
        harness.prefect_server(databases) as server,
        temporary_settings(updates={PREFECT_API_URL: server.api_url}),
        processes.temporary_dir("jobctl-bench-precision-") as logs,
    ):
        ids = asyncio.run(deployment_ids(settings))
        console.log(f"{name}: {len(ids)} deployments synced; starting the worker")
        with processes.process_worker(
            server.api_url,
            url,
            settings.work_pool,
            TUNING,
            logs / "worker.log",
            worker_type=scenario.worker_type,
        ) as worker:
            start = next_minute(datetime.now(UTC) + timedelta(seconds=SETTLE_S))
            end = start + timedelta(minutes=scenario.minutes)
            console.log(
                f"{name}: measuring runs scheduled {start:%H:%M} … {end:%H:%M} UTC "
                f"({scenario.rows * scenario.minutes} runs)"
            )
            # The worker takes runs up to its prefetch ahead of their time.
            time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds() - _PREFETCH_S))
            cpu_before, _ = throughput_bench.tree_cpu(worker.process.pid)
            time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()))
            load_before = processes.load_note()
            time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()))
            load_after = processes.load_note()
            deadline = time.monotonic() + FINISH_GRACE_S
            runs = asyncio.run(runs_in(ids, start, end))
            while time.monotonic() < deadline and any(
                run.state is None or not run.state.is_final() for run in runs
            ):
                time.sleep(2)
                runs = asyncio.run(runs_in(ids, start, end))
            # The runs of the next minute are not ours: stop counting at the window's end,
            # as close as the last run's end allows.
            cpu_after, _ = throughput_bench.tree_cpu(worker.process.pid)
    outcome = outcome_of(scenario, runs, (start, end), load_before, load_after)
    outcome.worker_cpu_s = cpu_after - cpu_before
    return outcome


def outcome_of(
    scenario: Scenario,
    runs: list[FlowRun],
    window: tuple[datetime, datetime],
    load_before: dict[str, float],
    load_after: dict[str, float],
) -> Outcome:
    lateness: list[float] = []
    lead: list[float] = []
    states: dict[str, int] = {}
    never = 0
    for run in runs:
        state = (run.state.name if run.state else None) or "none"
        states[state] = states.get(state, 0) + 1
        if run.expected_start_time is not None and run.created is not None:
            lead.append((run.expected_start_time - run.created).total_seconds())
        if run.start_time is None or run.expected_start_time is None:
            never += 1
            continue
        lateness.append((run.start_time - run.expected_start_time).total_seconds())
    return Outcome(scenario, lateness, never, states, lead, window, load_before, load_after)


def run(quick: bool, console: Console) -> bool:
    config = QUICK if quick else FULL
    started_at = datetime.now(UTC)
    outcomes: list[Outcome] = []
    with harness.sigterm_raises(), Databases() as databases:
        for scenario in config.scenarios:
            outcomes.append(measure(databases, scenario, console))
    lines = [line for outcome in outcomes for line in outcome.lines()]
    lines += [Line(name, None, "", note=text) for name, text in ANCHORS]
    title = (
        "Precision — rows '* * * * *', one worker of each type in turn, jobctl's worker "
        "settings (PostgreSQL-backed server)"
    )
    report.print_lines(
        console,
        title,
        lines,
        caption="shared 2-core machine: load averages (1/5/15 min) in the note",
    )
    path = harness.write_results(
        NAME,
        {
            "started_at": started_at.isoformat(),
            "config": {"scenarios": [outcome.scenario.name for outcome in outcomes]},
            "scenarios": [outcome.as_json() for outcome in outcomes],
            "anchors": dict(ANCHORS),
            "lines": [line.as_json() for line in lines],
            "targets_missed": report.missed(lines),
        },
    )
    console.print(f"results written to {path}")
    return not report.missed(lines)
