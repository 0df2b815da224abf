"""Throughput: trivial runs completed per minute through one worker, Prefect's process
worker and jobctl's warm worker side by side.

One PostgreSQL-backed server. For each worker type in turn (``process``, then
``jobctl-warm``): tables and a work pool of its own, limited to ``CONCURRENCY`` runs at
once, one ``prefect worker start --type <type>`` (query every 1 s), and three deployments
of the same job in the same queue:

- **ours**: the deployment ``deployments.sync`` makes for a ``processData`` row (entrypoint
  ``flows.registered.processData``: history recorded, state hooks, run policy, misfire
  check, Prefect heartbeats every 30 s as the row's job variables set them);
- **ours, heartbeats off**: the same runs with the heartbeat variable left out of the run's
  job variables (a diagnostic: what the heartbeats cost);
- **plain**: ``bench.plain_flows.process_data_plain``, the job called from a bare ``@flow``.

Batches of ``BATCH`` runs are created at once and timed from their creation to the last
run's end, in the order ours, plain, no-heartbeat, plain, ours (so that a drift of the
machine favours none); runs per minute of each kind over its batches. For every batch, the
CPU seconds of the worker's process tree (the worker, the warm template, every flow
process; children that have exited count through their parent's ``cutime``), measured
until the batch's processes have exited, and of the Prefect server, each per run.
Compared: warm ÷ process (ours, runs/min), ours ÷ plain on each worker (the cost of our
layer). Then, on the process worker, one run of each with the flow process under
``cProfile`` (``python -m cProfile -m prefect.engine``, through the run's ``command`` job
variable), and the import time of each entrypoint in a fresh interpreter: the profile
texts go to ``bench/results/``.
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
from deployments.spec import HEARTBEAT_ENV, queue_name
from deployments.sync import sync
from jobctl.db import create_db_engine
from jobctl.models import JobHistory, JobStatus
from jobctl.prefect.gateway.client import ClientGateway
from jobctl.processes import descendants
from jobctl.records import ScheduleSpec
from jobctl.repository import Repository
from jobctl.settings import Settings
from jobctl_warm import child
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.processes import base_env

NAME = "throughput"
CONCURRENCY = 4
COST_TARGET = 0.05
WARM_OVER_PROCESS_TARGET = 4.0
WARM_CPU_PER_RUN_TARGET_S = 0.5
PROCESS, WARM = "process", "jobctl-warm"
WORKER_TYPES = (PROCESS, WARM)
EXIT_WAIT_S = 60.0
# pstats restriction: the functions of this project, not of Prefect or the standard library.
OUR_CODE = rf"{re.escape(str(processes.PROJECT_DIR))}/(flows|jobctl|jobs|deployments)/"
PARAM = ["throughput", "bench"]
RUN_TIMEOUT_S = 600.0
TUNING = WorkerTuning(query_s=1)
PROFILE_TOP = 35

OURS, NO_HEARTBEAT, PLAIN = "ours", "ours, heartbeats off", "plain"


@dataclass(frozen=True)
class Config:
    batch: int
    order: tuple[str, ...]


FULL = Config(batch=20, order=(OURS, PLAIN, NO_HEARTBEAT, PLAIN, OURS))
QUICK = Config(batch=8, order=(OURS, PLAIN, NO_HEARTBEAT))


@dataclass
class Kind:
    """How to create a run of one kind: a deployment, and job variables of the run."""

    name: str
    deployment_id: uuid.UUID
    job_variables: dict[str, Any] = field(default_factory=dict)
    # The deployment's own ``env``: a run's ``env`` replaces it whole.
    deployment_env: dict[str, str] = field(default_factory=dict)


@dataclass
class Batch:
    kind: str
    seconds: float
    runs: list[FlowRun]
    load: dict[str, float]
    worker_cpu_s: float = 0.0  # the worker's process tree, the whole batch
    worker_alone_cpu_s: float = 0.0  # the worker process itself, without its children
    server_cpu_s: float = 0.0  # the Prefect server's process group, the whole batch

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
        done = await sync(settings, repository, ClientGateway(client))
        if not done.ok:
            raise RuntimeError(f"the sync failed: {done.summary()}")
        (ours,) = await ClientGateway(client).read_managed_deployments(settings.work_pool)
        deployment = await client.read_deployment(ours.id)
        ours_env = dict((deployment.job_variables or {}).get("env", {}))
        env = {key: value for key, value in ours_env.items() if key != HEARTBEAT_ENV}
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
    return {
        OURS: Kind(OURS, ours.id, deployment_env=ours_env),
        PLAIN: Kind(PLAIN, plain_id),
        NO_HEARTBEAT: Kind(NO_HEARTBEAT, ours.id, {"env": env}, env),
    }


# -- profiles --------------------------------------------------------------------------------


async def profile_run(kind: Kind, out: Path, worker_type: str) -> float:
    """One run with its flow process under cProfile; its wall time from creation to end.

    On the process worker, through the run's ``command``; on the warm worker (which would
    start a command cold), through ``JOBCTL_WARM_PROFILE`` in the run's environment.
    """
    if worker_type == WARM:
        env = {**kind.deployment_env, child.PROFILE_ENV: str(out)}
        extra: dict[str, Any] = {"env": env}
    else:
        extra = {"command": f"{sys.executable} -m cProfile -o {out} -m prefect.engine"}
    profiled = Kind(kind.name, kind.deployment_id, {**kind.job_variables, **extra})
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
            env=base_env(),
            capture_output=True,
        )
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


# -- CPU of a worker -------------------------------------------------------------------------


def tree_cpu(root: int) -> tuple[float, int]:
    """CPU seconds of ``root`` and every process below it, the children they have reaped
    included (``utime + stime + cutime + cstime``); and how many processes there are."""
    total = 0.0
    pids = [root, *(pid for pid, _ in descendants(root))]
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += sum(int(value) for value in fields[11:15]) / harness.CLOCK_TICKS
    return total, len(pids)


def own_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` alone (``utime + stime``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(value) for value in fields[11:13]) / harness.CLOCK_TICKS


def wait_for_exits(root: int, processes_at_rest: int) -> None:
    """Until the flow processes of a batch have exited (a run is final before its process
    has drained its logs and events and ended)."""
    deadline = time.monotonic() + EXIT_WAIT_S
    while tree_cpu(root)[1] > processes_at_rest and time.monotonic() < deadline:
        time.sleep(0.2)


def measured_batch(kind: Kind, count: int, worker_pid: int, meter: harness.CpuMeter) -> Batch:
    before, at_rest = tree_cpu(worker_pid)
    alone_before = own_cpu(worker_pid)
    server_before = meter.sample()
    batch = asyncio.run(run_batch(kind, count))
    wait_for_exits(worker_pid, at_rest)
    batch.worker_cpu_s = tree_cpu(worker_pid)[0] - before
    batch.worker_alone_cpu_s = own_cpu(worker_pid) - alone_before
    batch.server_cpu_s = (meter.sample() - server_before).server_s
    return batch


# -- the run ---------------------------------------------------------------------------------


def rate(batches: Sequence[Batch]) -> float:
    """Runs completed per minute over every batch of one kind."""
    return 60 * sum(len(b.runs) for b in batches) / sum(b.seconds for b in batches)


def per_run(batches: Sequence[Batch], what: str) -> float:
    runs = sum(len(b.runs) for b in batches)
    return float(sum(getattr(b, what) for b in batches)) / runs


@dataclass
class WorkerOutcome:
    worker_type: str
    batches: list[Batch]
    history_success_rows: int
    ours_runs: int

    def of(self, kind: str) -> list[Batch]:
        return [b for b in self.batches if b.kind == kind]

    def kinds(self) -> list[str]:
        return list(dict.fromkeys(b.kind for b in self.batches))


def measure_worker(
    worker_type: str,
    config: Config,
    databases: Databases,
    server: PrefectServer,
    scratch: Path,
    console: Console,
    profiles: dict[str, Any],
    stamp: str,
) -> WorkerOutcome:
    tables = databases.create_migrated(f"throughput_{worker_type.replace('-', '_')}")
    url = harness.psycopg_url(tables)
    settings = Settings(
        database_url=url,
        work_pool=f"bench-throughput-{worker_type}-{uuid.uuid4().hex[:6]}",
        work_pool_concurrency=CONCURRENCY,
    )
    engine = create_db_engine(url)
    repository = Repository(engine)
    try:
        repository.add_schedule(
            ScheduleSpec(cron="0 0 1 1 *", job_name="processData", param=PARAM, max_retries=0)
        )
        kinds = asyncio.run(make_kinds(settings, repository))
        meter = harness.CpuMeter(server)
        with processes.process_worker(
            server.api_url,
            url,
            settings.work_pool,
            TUNING,
            scratch / f"worker-{worker_type}.log",
            worker_type=worker_type,
        ) as worker:
            console.log(f"throughput, {worker_type}: one warm-up run of each kind")
            for name in dict.fromkeys(config.order):
                asyncio.run(run_batch(kinds[name], 1))
            batches: list[Batch] = []
            for name in config.order:
                console.log(f"throughput, {worker_type}: {config.batch} runs of {name}")
                batches.append(measured_batch(kinds[name], config.batch, worker.process.pid, meter))
                last = batches[-1]
                console.log(
                    f"  {last.seconds:.1f} s, worker {last.worker_cpu_s:.1f} CPU-s, "
                    f"server {last.server_cpu_s:.1f} CPU-s"
                )
            for name in (OURS, PLAIN):
                out = scratch / f"{worker_type}-{name}.prof"
                console.log(f"throughput, {worker_type}: one run of {name} under cProfile")
                seconds = asyncio.run(profile_run(kinds[name], out, worker_type))
                tag = f"{name}" if worker_type == PROCESS else f"warm-{name}"
                path = harness.RESULTS_DIR / f"profile-throughput-{stamp}-{tag}.txt"
                how = (
                    "python -m cProfile -m prefect.engine"
                    if worker_type == PROCESS
                    else "the forked flow process, from the engine's __main__ body on"
                )
                title = (
                    f"cProfile of one flow process of {name!r} on the {worker_type} worker "
                    f"({seconds:.2f} s from creation to end), {how}"
                )
                path.write_text(profile_text(out, title))
                profiles[tag] = {"file": path.name, "run_s": round(seconds, 3)}
        with repository.session() as session:
            recorded = session.scalar(
                select(func.count())
                .select_from(JobHistory)
                .where(JobHistory.status == JobStatus.SUCCESS)
            )
    finally:
        engine.dispose()
    ours_runs = sum(len(b.runs) for b in batches if b.kind in (OURS, NO_HEARTBEAT))
    return WorkerOutcome(worker_type, batches, recorded or 0, ours_runs)


def run(quick: bool, console: Console) -> bool:
    config = QUICK if quick else FULL
    started_at = datetime.now(UTC)
    stamp = harness.utc_stamp()
    profiles: dict[str, Any] = {}
    outcomes: list[WorkerOutcome] = []
    with harness.sigterm_raises(), Databases() as databases:
        with (
            harness.prefect_server(databases) as server,
            temporary_settings(updates={PREFECT_API_URL: server.api_url}),
            processes.temporary_dir("jobctl-bench-throughput-") as scratch,
        ):
            for worker_type in WORKER_TYPES:
                outcomes.append(
                    measure_worker(
                        worker_type, config, databases, server, scratch, console, profiles, stamp
                    )
                )
    console.log("throughput: import time of each entrypoint in a fresh interpreter")
    imports = {
        "prefect.engine": import_seconds("prefect.engine"),
        "bench.plain_flows (plain)": import_seconds("bench.plain_flows"),
        "flows.registered (ours)": import_seconds("flows.registered"),
    }
    lines = summarise(outcomes, imports)
    report.print_lines(
        console,
        f"Throughput — one worker of each type, pool limit {CONCURRENCY}, batches of "
        f"{config.batch}",
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
                "worker_types": list(WORKER_TYPES),
            },
            "workers": [
                {
                    "worker_type": outcome.worker_type,
                    "history_success_rows": outcome.history_success_rows,
                    "ours_runs_expected_in_history_at_least": outcome.ours_runs,
                    "batches": [batch_json(b) for b in outcome.batches],
                }
                for outcome in outcomes
            ],
            "import_s": {name: round(value, 3) for name, value in imports.items()},
            "profiles": profiles,
            "lines": [line.as_json() for line in lines],
            "targets_missed": report.missed(lines),
        },
    )
    console.print(f"results written to {path}")
    for outcome in outcomes:
        if outcome.history_success_rows < outcome.ours_runs:
            raise RuntimeError(
                f"{outcome.worker_type}: {outcome.history_success_rows} SUCCESS history rows, "
                f"expected ≥ {outcome.ours_runs}"
            )
    return not report.missed(lines)


def batch_json(b: Batch) -> dict[str, Any]:
    return {
        "kind": b.kind,
        "runs": len(b.runs),
        "seconds": round(b.seconds, 3),
        "runs_per_min": round(60 * len(b.runs) / b.seconds, 2),
        "created_to_start_median_s": round(statistics.median(b.per_run("to_start")), 3),
        "start_to_end_median_s": round(statistics.median(b.per_run("running")), 3),
        "worker_tree_cpu_s": round(b.worker_cpu_s, 3),
        "worker_alone_cpu_s": round(b.worker_alone_cpu_s, 3),
        "prefect_server_cpu_s": round(b.server_cpu_s, 3),
        **b.load,
    }


def summarise(outcomes: Sequence[WorkerOutcome], imports: dict[str, float]) -> list[Line]:
    lines: list[Line] = []
    rates: dict[tuple[str, str], float] = {}
    for outcome in outcomes:
        for name in outcome.kinds():
            batches = outcome.of(name)
            rates[(outcome.worker_type, name)] = rate(batches)
            in_engine = [s for batch in batches for s in batch.per_run("running")]
            to_start = [s for batch in batches for s in batch.per_run("to_start")]
            runs = sum(len(b.runs) for b in batches)
            cpu = per_run(batches, "worker_cpu_s")
            warm_ours = outcome.worker_type == WARM and name == OURS
            lines += [
                Line(
                    f"{outcome.worker_type}, {name}: runs per minute ({runs} runs)",
                    rates[(outcome.worker_type, name)],
                    "runs/min",
                    note=processes.load_text(batches[0].load),
                ),
                Line("  created → Running, median", statistics.median(to_start), "s"),
                Line("  Running → Completed, median", statistics.median(in_engine), "s"),
                Line(
                    "  worker + flow processes, CPU per run",
                    cpu,
                    "s",
                    f"≤ {WARM_CPU_PER_RUN_TARGET_S:g} s" if warm_ours else "",
                    cpu <= WARM_CPU_PER_RUN_TARGET_S if warm_ours else None,
                ),
                Line("    of which the worker alone", per_run(batches, "worker_alone_cpu_s"), "s"),
                Line("  Prefect server, CPU per run", per_run(batches, "server_cpu_s"), "s"),
            ]
        cost = 1 - rates[(outcome.worker_type, OURS)] / rates[(outcome.worker_type, PLAIN)]
        on_warm = outcome.worker_type == WARM
        lines.append(
            Line(
                f"{outcome.worker_type}: cost of our layer, 1 - ours ÷ plain (runs/min)",
                100 * cost,
                "%",
                f"≤ {100 * COST_TARGET:g} %" if on_warm else "",
                cost <= COST_TARGET if on_warm else None,
            )
        )
        if (outcome.worker_type, NO_HEARTBEAT) in rates:
            no_heartbeat = (
                1 - rates[(outcome.worker_type, NO_HEARTBEAT)] / rates[(outcome.worker_type, PLAIN)]
            )
            lines.append(Line("  the same, heartbeats off (diagnostic)", 100 * no_heartbeat, "%"))
    if (WARM, OURS) in rates and (PROCESS, OURS) in rates:
        ratio = rates[(WARM, OURS)] / rates[(PROCESS, OURS)]
        lines.append(
            Line(
                "warm ÷ process, ours (runs/min)",
                ratio,
                "x",
                f"≥ {WARM_OVER_PROCESS_TARGET:g}x",
                ratio >= WARM_OVER_PROCESS_TARGET,
            )
        )
    for module, seconds in imports.items():
        lines.append(Line(f"python -c 'import {module}', median of 5", seconds, "s"))
    return lines
