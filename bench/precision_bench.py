"""Precision: how late a cron run starts on a process worker (start time - scheduled time).

For each worker profile (jobctl's settings, then Prefect's defaults), on a fresh
PostgreSQL-backed ``prefect server start`` and jobctl tables of its own:

1. ``ROWS`` rows ``* * * * *`` of ``processData`` added through ``Repository.add_schedule``
   and mirrored with ``deployments.sync.sync``;
2. one ``prefect worker start --type process`` on the pool, with
   ``PREFECT_WORKER_QUERY_SECONDS`` / ``PREFECT_WORKER_PREFETCH_SECONDS`` of the profile;
3. from the next minute boundary at least ``SETTLE_S`` after the worker is online, every
   auto-scheduled run whose scheduled time falls in the next ``MINUTES`` minutes:
   ``flow_run.start_time - flow_run.expected_start_time`` (the server's clock both), p50 /
   p95 / p99 / max. A run that never started counts as infinitely late.

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

from bench import harness, processes, report
from bench.harness import Databases
from bench.processes import WorkerTuning
from bench.report import Line
from deployments.gateway import Gateway
from deployments.sync import sync
from jobctl.db import create_db_engine
from jobctl.records import ScheduleSpec
from jobctl.repository import Repository
from jobctl.settings import Settings
from jobctl.stack import WORKER_TUNING

NAME = "precision"
P99_TARGET_S = 1.0
SETTLE_S = 20.0
FINISH_GRACE_S = 120.0
PAGE = 200
ANCHORS = (
    ("Temporal (published)", "schedules start within 1 s of their time"),
    ("Dagster (published)", "scheduled runs start 1-6 s late"),
)


@dataclass(frozen=True)
class Profile:
    name: str
    tuning: WorkerTuning
    server_env: dict[str, str]
    why: str


DEFAULTS = Profile(
    "Prefect defaults (query 10 s, prefetch 10 s)",
    WorkerTuning(),
    {},
    "a worker started without jobctl's settings",
)
_QUERY_S = float(WORKER_TUNING["PREFECT_WORKER_QUERY_SECONDS"])
_PREFETCH_S = float(WORKER_TUNING["PREFECT_WORKER_PREFETCH_SECONDS"])
TUNED = Profile(
    f"jobctl's (query {_QUERY_S:g} s, prefetch {_PREFETCH_S:g} s)",
    WorkerTuning(query_s=_QUERY_S, prefetch_s=_PREFETCH_S),
    {},
    "what `jobctl up` and deploy/env.example set: the flow process starts up to "
    f"{_PREFETCH_S:g} s early and waits for its time in the engine",
)


@dataclass(frozen=True)
class Config:
    rows: int
    minutes: int
    profiles: tuple[Profile, ...]


FULL = Config(rows=20, minutes=5, profiles=(TUNED, DEFAULTS))
QUICK = Config(rows=10, minutes=2, profiles=(TUNED,))


@dataclass
class Outcome:
    profile: Profile
    lateness_s: list[float]
    never_started: int
    states: dict[str, int]
    lead_s: list[float]
    window: tuple[datetime, datetime]
    load_before: dict[str, float]
    load_after: dict[str, float]

    @property
    def runs(self) -> int:
        return len(self.lateness_s) + self.never_started

    def quantile(self, q: float) -> float:
        values = self.lateness_s + [math.inf] * self.never_started
        return harness.percentile(values, q)

    def lines(self) -> list[Line]:
        p99 = self.quantile(99)
        note = (
            f"{processes.load_text(self.load_before)} before, "
            f"{processes.load_text(self.load_after)} after"
        )
        return [
            Line(f"{self.profile.name}: runs measured", self.runs, "runs", "≥ 100"),
            Line("  start - scheduled, p50", self.quantile(50), "s"),
            Line("  start - scheduled, p95", self.quantile(95), "s"),
            Line(
                "  start - scheduled, p99",
                p99,
                "s",
                f"≤ {P99_TARGET_S:g} s",
                p99 <= P99_TARGET_S,
                note,
            ),
            Line("  start - scheduled, max", self.quantile(100), "s"),
            Line("  earliest start - scheduled (min)", min(self.lateness_s, default=None), "s"),
            Line("  runs created ahead of their time, min", min(self.lead_s, default=None), "s"),
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile.name,
            "worker_env": self.profile.tuning.env(),
            "server_env": self.profile.server_env,
            "why": self.profile.why,
            "window": [moment.isoformat() for moment in self.window],
            "runs": self.runs,
            "never_started": self.never_started,
            "states": self.states,
            "p50_s": self.quantile(50),
            "p95_s": self.quantile(95),
            "p99_s": self.quantile(99),
            "max_s": self.quantile(100),
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
            done = await sync(settings, Repository(engine), client)
            if not done.ok:
                raise RuntimeError(f"the sync failed: {done.summary()}")
            deployed = await Gateway(client).read_managed_deployments(settings.work_pool)
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


def measure_profile(
    databases: Databases, config: Config, profile: Profile, console: Console
) -> Outcome:
    tables = databases.create_migrated("precision")
    url = harness.psycopg_url(tables)
    settings = Settings(database_url=url, work_pool=f"bench-precision-{uuid.uuid4().hex[:6]}")
    engine = create_db_engine(url)
    try:
        add_rows(Repository(engine), config.rows)
    finally:
        engine.dispose()
    with (
        harness.prefect_server(databases, **profile.server_env) as server,
        temporary_settings(updates={PREFECT_API_URL: server.api_url}),
        processes.temporary_dir("jobctl-bench-precision-") as logs,
    ):
        ids = asyncio.run(deployment_ids(settings))
        console.log(f"{profile.name}: {len(ids)} deployments synced; starting the worker")
        with processes.process_worker(
            server.api_url, url, settings.work_pool, profile.tuning, logs / "worker.log"
        ):
            start = next_minute(datetime.now(UTC) + timedelta(seconds=SETTLE_S))
            end = start + timedelta(minutes=config.minutes)
            console.log(
                f"{profile.name}: measuring runs scheduled {start:%H:%M} … {end:%H:%M} UTC "
                f"({config.rows * config.minutes} runs)"
            )
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
    return outcome_of(profile, runs, (start, end), load_before, load_after)


def outcome_of(
    profile: Profile,
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
    return Outcome(profile, lateness, never, states, lead, window, load_before, load_after)


def run(quick: bool, console: Console) -> bool:
    config = QUICK if quick else FULL
    started_at = datetime.now(UTC)
    outcomes: list[Outcome] = []
    with harness.sigterm_raises(), Databases() as databases:
        for profile in config.profiles:
            outcomes.append(measure_profile(databases, config, profile, console))
    lines = [line for outcome in outcomes for line in outcome.lines()]
    lines += [Line(name, None, "", note=text) for name, text in ANCHORS]
    title = (
        f"Precision — {config.rows} rows '* * * * *', {config.minutes} min, one process worker "
        "(PostgreSQL-backed server)"
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
            "config": {"rows": config.rows, "minutes": config.minutes},
            "profiles": [outcome.as_json() for outcome in outcomes],
            "anchors": dict(ANCHORS),
            "lines": [line.as_json() for line in lines],
            "targets_missed": report.missed(lines),
        },
    )
    console.print(f"results written to {path}")
    # jobctl's profile carries the target; the defaults are the comparison.
    tuned = [outcome for outcome in outcomes if outcome.profile is TUNED]
    return bool(tuned) and tuned[0].quantile(99) <= P99_TARGET_S
