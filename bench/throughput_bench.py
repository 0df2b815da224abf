"""Throughput: trivial runs completed per minute through one process worker.

One PostgreSQL-backed server, one ``prefect worker start --type process`` (query every
1 s), one work pool limited to ``CONCURRENCY`` runs at once, and three deployments of the
same job in the same queue:

- **ours**: the deployment ``deployments.sync`` makes for a ``processData`` row (entrypoint
  ``flows.registered.processData``: history recorded, state hooks, run policy, misfire
  check, Prefect heartbeats every 30 s as the row's job variables set them);
- **ours, heartbeats off**: the same runs with the heartbeat variable left out of the run's
  job variables (a diagnostic: what the heartbeats cost);
- **plain**: ``bench.plain_flows.process_data_plain``, the job called from a bare ``@flow``.

Batches of ``BATCH`` runs are created at once and timed from their creation to the last
run's end, in the order ours, plain, no-heartbeat, no-heartbeat, plain, ours (so that a
drift of the machine favours none); runs per minute of each kind over its batches, and
ours ÷ plain. Then one run of each with the flow process under ``cProfile``
(``python -m cProfile -m prefect.engine``, through the run's ``command`` job variable), and
the import time of each entrypoint in a fresh interpreter: the profile texts go to
``bench/results/``.
"""

from __future__ import annotations

import asyncio
import io
import pstats
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings
from rich.console import Console
from sqlalchemy import func, select

from bench import harness, plain_flows, processes, report
from bench.harness import Databases
from bench.processes import WorkerTuning
from bench.report import Line
from deployments.gateway import Gateway
from deployments.spec import HEARTBEAT_ENV, queue_name
from deployments.sync import sync
from jobctl.db import create_db_engine
from jobctl.models import JobHistory, JobStatus
from jobctl.records import ScheduleSpec
from jobctl.repository import Repository
from jobctl.settings import Settings

NAME = "throughput"
CONCURRENCY = 4
COST_TARGET = 0.05
# pstats restriction: the functions of this project, not of Prefect or the standard library.
OUR_CODE = rf"{re.escape(str(processes.PROJECT_DIR))}/(flows|jobctl|jobs|deployments)/"
PARAM = ["throughput", "bench"]
RUN_TIMEOUT_S = 600.0
TUNING = WorkerTuning(query_s=1)
PROFILE_TOP = 35

OURS, NO_HEARTBEAT, PLAIN = "ours", "ours, heartbeats off", "plain"
OURS_DIRECT, PLAIN_DIRECT = "ours, engine command set", "plain, engine command set"
# Set as the run's ``command``, the process worker starts the engine itself instead of
# Prefect 3.9's workspace supervisor, a Python process that then starts the engine.
ENGINE_COMMAND = f"{sys.executable} -m prefect.engine"


@dataclass(frozen=True)
class Config:
    batch: int
    order: tuple[str, ...]


FULL = Config(
    batch=15,
    order=(OURS, PLAIN, NO_HEARTBEAT, OURS_DIRECT, PLAIN_DIRECT, PLAIN, OURS),
)
QUICK = Config(batch=8, order=(OURS, PLAIN, NO_HEARTBEAT, OURS_DIRECT, PLAIN_DIRECT))


@dataclass
class Kind:
    """How to create a run of one kind: a deployment, and job variables of the run."""

    name: str
    deployment_id: uuid.UUID
    job_variables: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    kind: str
    seconds: float
    runs: list[FlowRun]
    load: dict[str, float]

    def per_run(self, what: str) -> list[float]:
        values: list[float] = []
        for run in self.runs:
            if run.start_time is None or run.end_time is None or run.created is None:
                continue
            if what == "to_start":
                values.append((run.start_time - run.created).total_seconds())
            else:
                values.append((run.end_time - run.start_time).total_seconds())
        return values


async def create_runs(client: PrefectClient, kind: Kind, count: int) -> list[uuid.UUID]:
    runs = await asyncio.gather(
        *(
            client.create_flow_run_from_deployment(
                kind.deployment_id, parameters={"param": PARAM}, job_variables=kind.job_variables
            )
            for _ in range(count)
        )
    )
    return [run.id for run in runs]


async def wait_final(client: PrefectClient, ids: Sequence[uuid.UUID]) -> list[FlowRun]:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        runs = [await client.read_flow_run(run_id) for run_id in ids]
        if all(run.state is not None and run.state.is_final() for run in runs):
            return runs
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs not final after {RUN_TIMEOUT_S}s")
        await asyncio.sleep(0.25)


async def run_batch(kind: Kind, count: int) -> Batch:
    async with get_client() as client:
        load = processes.load_note()
        started = datetime.now(UTC)
        ids = await create_runs(client, kind, count)
        runs = await wait_final(client, ids)
    failed = [run for run in runs if run.state is None or not run.state.is_completed()]
    if failed:
        raise RuntimeError(f"{kind.name}: {len(failed)} run(s) did not complete: {failed[0].state}")
    last_end = max(run.end_time for run in runs if run.end_time is not None)
    return Batch(kind.name, (last_end - started).total_seconds(), runs, load)


async def make_kinds(settings: Settings, repository: Repository) -> dict[str, Kind]:
    async with get_client() as client:
        done = await sync(settings, repository, client)
        if not done.ok:
            raise RuntimeError(f"the sync failed: {done.summary()}")
        (ours,) = await Gateway(client).read_managed_deployments(settings.work_pool)
        deployment = await client.read_deployment(ours.id)
        env = dict((deployment.job_variables or {}).get("env", {}))
        env.pop(HEARTBEAT_ENV, None)
        flow_id = await client.create_flow_from_name(plain_flows.FLOW_NAME)
        plain_id = await client.create_deployment(
            flow_id=flow_id,
            name=f"plain-{settings.work_pool}",
            entrypoint=plain_flows.ENTRYPOINT,
            work_pool_name=settings.work_pool,
            work_queue_name=queue_name(0),
            parameters={"param": PARAM},
            enforce_parameter_schema=False,
        )
    direct = {"command": ENGINE_COMMAND}
    return {
        OURS: Kind(OURS, ours.id),
        PLAIN: Kind(PLAIN, plain_id),
        NO_HEARTBEAT: Kind(NO_HEARTBEAT, ours.id, {"env": env}),
        OURS_DIRECT: Kind(OURS_DIRECT, ours.id, direct),
        PLAIN_DIRECT: Kind(PLAIN_DIRECT, plain_id, direct),
    }


# -- profiles --------------------------------------------------------------------------------


async def profile_run(kind: Kind, out: Path) -> float:
    """One run with its flow process under cProfile; its wall time from creation to end."""
    command = f"{sys.executable} -m cProfile -o {out} -m prefect.engine"
    profiled = Kind(kind.name, kind.deployment_id, {**kind.job_variables, "command": command})
    batch = await run_batch(profiled, 1)
    return batch.seconds


def profile_text(path: Path, title: str) -> str:
    """The profile, once the flow process has written it (it does so as it exits, after
    the run's final state is already visible)."""
    stream = io.StringIO()
    deadline = time.monotonic() + 60
    while True:
        try:
            stats = pstats.Stats(str(path), stream=stream)
            break
        except (OSError, EOFError, ValueError):
            if time.monotonic() > deadline:
                return f"{title}\n\nno profile written to {path}\n"
            time.sleep(0.5)
    stream.write(f"{title}\n\n")
    stats.sort_stats("cumulative").print_stats(PROFILE_TOP)
    stats.sort_stats("tottime").print_stats(15)
    stream.write("\nOur code only (flows/, jobctl/, jobs/, deployments/):\n")
    stats.sort_stats("cumulative").print_stats(OUR_CODE, PROFILE_TOP)
    return stream.getvalue()


def import_seconds(module: str, repeats: int = 5) -> float:
    """Median wall time of ``python -c 'import <module>'`` in a fresh interpreter."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", f"import {module}"],
            check=True,
            env=harness.child_env(),
            capture_output=True,
        )
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


# -- the run ---------------------------------------------------------------------------------


def rate(batches: Sequence[Batch]) -> float:
    """Runs completed per minute over every batch of one kind."""
    return 60 * sum(len(b.runs) for b in batches) / sum(b.seconds for b in batches)


def run(quick: bool, console: Console) -> bool:
    config = QUICK if quick else FULL
    started_at = datetime.now(UTC)
    stamp = harness.utc_stamp()
    profiles: dict[str, Any] = {}
    with harness.sigterm_raises(), Databases() as databases:
        tables = databases.create_migrated("throughput")
        url = harness.psycopg_url(tables)
        settings = Settings(
            database_url=url,
            work_pool=f"bench-throughput-{uuid.uuid4().hex[:6]}",
            work_pool_concurrency=CONCURRENCY,
        )
        engine = create_db_engine(url)
        repository = Repository(engine)
        repository.add_schedule(
            ScheduleSpec(cron="0 0 1 1 *", job_name="processData", param=PARAM, max_retries=0)
        )
        try:
            with (
                harness.prefect_server(databases) as server,
                temporary_settings(updates={PREFECT_API_URL: server.api_url}),
                processes.temporary_dir("jobctl-bench-throughput-") as scratch,
            ):
                kinds = asyncio.run(make_kinds(settings, repository))
                with processes.process_worker(
                    server.api_url, url, settings.work_pool, TUNING, scratch / "worker.log"
                ):
                    console.log("throughput: one warm-up run of each kind")
                    for kind in kinds.values():
                        asyncio.run(run_batch(kind, 1))
                    batches: list[Batch] = []
                    for name in config.order:
                        console.log(f"throughput: {config.batch} runs of {name}")
                        batches.append(asyncio.run(run_batch(kinds[name], config.batch)))
                        console.log(f"  {batches[-1].seconds:.1f} s")
                    for name in (OURS, PLAIN):
                        out = scratch / f"{name}.prof"
                        console.log(f"throughput: one run of {name} under cProfile")
                        seconds = asyncio.run(profile_run(kinds[name], out))
                        path = harness.RESULTS_DIR / f"profile-throughput-{stamp}-{name}.txt"
                        title = (
                            f"cProfile of one flow process of {name!r} ({seconds:.2f} s from "
                            f"creation to end), python -m cProfile -m prefect.engine"
                        )
                        path.write_text(profile_text(out, title))
                        profiles[name] = {"file": path.name, "run_s": round(seconds, 3)}
            with repository.session() as session:
                recorded = session.scalar(
                    select(func.count())
                    .select_from(JobHistory)
                    .where(JobHistory.status == JobStatus.SUCCESS)
                )
        finally:
            engine.dispose()
    console.log("throughput: import time of each entrypoint in a fresh interpreter")
    imports = {
        "prefect.engine": import_seconds("prefect.engine"),
        "bench.plain_flows (plain)": import_seconds("bench.plain_flows"),
        "flows.registered (ours)": import_seconds("flows.registered"),
    }
    by_kind = {name: [b for b in batches if b.kind == name] for name in kinds}
    ours_expected = sum(len(b.runs) for b in by_kind[OURS] + by_kind[NO_HEARTBEAT])
    lines = summarise(by_kind, imports)
    report.print_lines(
        console,
        f"Throughput — one process worker, pool limit {CONCURRENCY}, batches of {config.batch}",
        lines,
        caption="shared 2-core machine: load averages (1/5/15 min) at each batch's start in the "
        "JSON; the note gives the first batch's",
    )
    path = harness.write_results(
        NAME,
        {
            "started_at": started_at.isoformat(),
            "config": {
                "batch": config.batch,
                "order": list(config.order),
                "pool_concurrency": CONCURRENCY,
                "worker_env": TUNING.env(),
            },
            "batches": [
                {
                    "kind": b.kind,
                    "runs": len(b.runs),
                    "seconds": round(b.seconds, 3),
                    "runs_per_min": round(60 * len(b.runs) / b.seconds, 2),
                    "created_to_start_median_s": round(statistics.median(b.per_run("to_start")), 3),
                    "start_to_end_median_s": round(statistics.median(b.per_run("running")), 3),
                    **b.load,
                }
                for b in batches
            ],
            "history_success_rows": recorded,
            "ours_runs_expected_in_history_at_least": ours_expected,
            "import_s": {name: round(value, 3) for name, value in imports.items()},
            "profiles": profiles,
            "lines": [line.as_json() for line in lines],
            "targets_missed": report.missed(lines),
        },
    )
    console.print(f"results written to {path}")
    if recorded is None or recorded < ours_expected:
        raise RuntimeError(f"{recorded} SUCCESS history rows, expected ≥ {ours_expected}")
    return not report.missed(lines)


def summarise(by_kind: dict[str, list[Batch]], imports: dict[str, float]) -> list[Line]:
    rates = {name: rate(batches) for name, batches in by_kind.items()}
    cost = 1 - rates[OURS] / rates[PLAIN]
    lines: list[Line] = []
    for name, batches in by_kind.items():
        runs = [run for batch in batches for run in batch.runs]
        in_engine = [s for batch in batches for s in batch.per_run("running")]
        to_start = [s for batch in batches for s in batch.per_run("to_start")]
        lines.append(
            Line(
                f"{name}: runs per minute ({len(runs)} runs)",
                rates[name],
                "runs/min",
                note=processes.load_text(batches[0].load),
            )
        )
        lines.append(Line("  created → Running, median", statistics.median(to_start), "s"))
        lines.append(Line("  Running → Completed, median", statistics.median(in_engine), "s"))
    lines.append(
        Line(
            "cost of our layer: 1 - ours ÷ plain (runs/min)",
            100 * cost,
            "%",
            f"≤ {100 * COST_TARGET:g} %",
            cost <= COST_TARGET,
        )
    )
    no_heartbeat = 1 - rates[NO_HEARTBEAT] / rates[PLAIN]
    lines.append(Line("  the same, heartbeats off (diagnostic)", 100 * no_heartbeat, "%"))
    direct = 1 - rates[OURS_DIRECT] / rates[PLAIN_DIRECT]
    lines.append(Line("  the same, both with the engine command set", 100 * direct, "%"))
    lines.append(
        Line(
            "engine command set: ours ÷ ours by default (runs/min)",
            rates[OURS_DIRECT] / rates[OURS],
            "x",
            note="the Prefect-native faster path: no workspace supervisor process",
        )
    )
    for module, seconds in imports.items():
        lines.append(Line(f"python -c 'import {module}', median of 5", seconds, "s"))
    return lines
