"""Footprint: resident memory of the worker, the sync watcher and the API; `jobctl up` time.

A. On PostgreSQL tables (``ROWS`` schedule rows, ``HISTORY_ROWS`` history rows) and a
   PostgreSQL-backed Prefect server: ``jobctl sync --watch``, ``prefect worker start --type
   process`` and ``jobctl api``, each a process of its own. Resident memory (``VmRSS``)
   of each at rest, then the peak (``VmHWM``, and the sampled group total for the worker,
   whose flow runs are child processes) under load, one load at a time:
   - worker: ``WORKER_RUNS`` runs of ``processData/manual-<pool>`` at once (pool limit 4);
   - watcher: ``EDIT_ROUNDS`` times, ``EDITED`` rows edited by plain SQL, until every one
     reached Prefect;
   - API: ``API_REQUESTS`` requests, ``API_CLIENTS`` at once, of the history (1,000 and 50
     rows) and the schedule list.
B. ``jobctl up --no-demo`` in a fresh folder (SQLite tables, its own Prefect server on
   SQLite, as the quickstart), one ``* * * * *`` row: seconds until it is ready (the
   "Prefect UI" line), until a run submitted then completes, until the first scheduled
   run is recorded SUCCESS; and until it has stopped after Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName
from prefect.settings import PREFECT_API_URL, temporary_settings
from rich.console import Console

from bench import harness, processes, report
from bench.harness import Databases
from bench.history_bench import fill_history
from bench.processes import MemoryPeak, WorkerTuning
from bench.report import Line
from deployments.manual import manual_deployment_name
from deployments.spec import schedule_id_of
from jobctl import migrate
from jobctl.db import create_db_engine
from jobctl.models import JobStatus
from jobctl.prefect.gateway.client import ClientGateway
from jobctl.records import HistoryFilter, ScheduleSpec
from jobctl.repository import Repository
from tests.fixtures.processes import Child, base_env, free_port

NAME = "footprint"
ROWS = 200
HISTORY_ROWS = 100_000
WORKER_RUNS = 24
POOL_LIMIT = 4
EDITED = 100
EDIT_ROUNDS = 5
API_REQUESTS = 400
API_CLIENTS = 8
TOKEN = "bench-token"
REST_S = 15.0
UP_TIMEOUT_S = 300.0


def add_rows(url: str, rows: int) -> None:
    engine = create_db_engine(url)
    try:
        repository = Repository(engine)
        for index in range(rows):
            repository.add_schedule(
                ScheduleSpec(
                    cron="0 0 1 1 *",
                    job_name="processData",
                    param=["footprint", str(index)],
                    description=f"footprint row {index}",
                )
            )
        fill_history(engine, HISTORY_ROWS, datetime.now(UTC))
    finally:
        engine.dispose()


async def managed_descriptions(pool: str) -> dict[str, str | None]:
    """Schedule id → description of every deployment of the pool."""
    deployments: list[Any] = []
    async with get_client() as client:
        while True:
            page = await client.read_deployments(
                work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
                limit=200,
                offset=len(deployments),
            )
            deployments += page
            if len(page) < 200:
                break
    found: dict[str, str | None] = {}
    for deployment in deployments:
        schedule_id = schedule_id_of(list(deployment.tags or []))
        if schedule_id is not None:
            found[schedule_id] = deployment.description
    return found


async def deployed_count(pool: str) -> int:
    async with get_client() as client:
        return len(await ClientGateway(client).read_managed_deployments(pool))


def rest_rss(named: dict[str, Child]) -> dict[str, float]:
    return {name: round(processes.rss_mb(child.process.pid), 1) for name, child in named.items()}


# -- the loads -------------------------------------------------------------------------------


async def load_worker(pool: str, worker: Child) -> MemoryPeak:
    peak = MemoryPeak(worker.process.pid)
    stop = asyncio.Event()
    sampler = asyncio.create_task(processes.sample_memory([peak], stop))
    try:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(
                manual_deployment_name("processData", pool)
            )
            runs = await asyncio.gather(
                *(
                    client.create_flow_run_from_deployment(
                        deployment.id, parameters={"param": ["footprint"]}
                    )
                    for _ in range(WORKER_RUNS)
                )
            )
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                states = [(await client.read_flow_run(run.id)).state for run in runs]
                if all(state is not None and state.is_final() for state in states):
                    break
                await asyncio.sleep(0.5)
            else:
                raise TimeoutError("the worker's runs did not finish in 600 s")
    finally:
        stop.set()
        await sampler
    return peak


def load_watcher(url: str, pool: str) -> float:
    """Edit ``EDITED`` rows ``EDIT_ROUNDS`` times; seconds until all reached Prefect, summed."""
    total = 0.0
    with psycopg.connect(harness.libpq_dsn(url.rsplit("/", 1)[1]), autocommit=True) as conn:
        ids = [str(row[0]) for row in conn.execute('SELECT id FROM "JobSchedule" ORDER BY id')]
        for round_ in range(EDIT_ROUNDS):
            tag = f"edited {round_} {uuid.uuid4().hex[:6]}"
            chosen = ids[round_ :: max(1, len(ids) // EDITED)][:EDITED]
            started = time.perf_counter()
            with conn.transaction():
                for schedule_id in chosen:
                    conn.execute(
                        'UPDATE "JobSchedule" SET description = %s WHERE id = %s',
                        (tag, schedule_id),
                    )
            processes.wait_until(
                lambda tag=tag, chosen=chosen: all(  # type: ignore[misc]
                    asyncio.run(managed_descriptions(pool)).get(i) == tag for i in chosen
                ),
                300,
                f"edit round {round_} in Prefect",
            )
            total += time.perf_counter() - started
    return total


async def load_api(base_url: str) -> list[float]:
    paths = ["/v1/job/history?limit=1000", "/v1/job/history?job=processData&limit=50"]
    paths.append("/v1/job/schedules")
    latencies: list[float] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for index in range(API_REQUESTS):
        queue.put_nowait(paths[index % len(paths)])

    async def client_loop() -> None:
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        ) as client:
            while not queue.empty():
                path = queue.get_nowait()
                started = time.perf_counter()
                response = await client.get(path)
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client_loop() for _ in range(API_CLIENTS)))
    return latencies


# -- A. the processes ------------------------------------------------------------------------


def bench_processes(databases: Databases, console: Console) -> tuple[list[Line], dict[str, Any]]:
    tables = databases.create_migrated("footprint")
    url = harness.psycopg_url(tables)
    pool = f"bench-footprint-{uuid.uuid4().hex[:6]}"
    console.log(f"footprint: {ROWS} rows and {HISTORY_ROWS:,} history rows")
    add_rows(url, ROWS)
    api_port = free_port()
    with (
        harness.prefect_server(databases) as server,
        temporary_settings(updates={PREFECT_API_URL: server.api_url}),
        processes.temporary_dir("jobctl-bench-footprint-") as logs,
    ):
        env = processes.stack_env(
            server.api_url, url, pool, JOBCTL_WORK_POOL_CONCURRENCY=POOL_LIMIT
        )
        jobctl = str(processes.JOBCTL_BIN)
        with (
            processes.child([jobctl, "sync", "--watch"], env, logs / "watch.log") as watcher,
        ):
            processes.wait_until(
                lambda: asyncio.run(deployed_count(pool)) >= ROWS, 300, "first sync", watcher
            )
            api_env = {**env, "JOBCTL_API_TOKEN": TOKEN}
            api_args = [jobctl, "api", "--host", "127.0.0.1", "--port", str(api_port)]
            base_url = f"http://127.0.0.1:{api_port}"
            with (
                processes.process_worker(
                    server.api_url, url, pool, WorkerTuning(query_s=1), logs / "worker.log"
                ) as worker,
                processes.child(api_args, api_env, logs / "api.log") as api,
            ):
                processes.wait_until(lambda: _healthy(base_url), 60, "the API", api)
                named = {"worker": worker, "watcher": watcher, "api": api}
                console.log(f"footprint: at rest for {REST_S:g} s")
                time.sleep(REST_S)
                at_rest = rest_rss(named)
                load_at_rest = processes.load_note()
                console.log(f"footprint: worker load, {WORKER_RUNS} runs")
                worker_peak = asyncio.run(load_worker(pool, worker))
                console.log(f"footprint: watcher load, {EDIT_ROUNDS} x {EDITED} edits")
                watcher_s = load_watcher(url, pool)
                console.log(f"footprint: API load, {API_REQUESTS} requests")
                load_api_note = processes.load_note()
                latencies = asyncio.run(load_api(base_url))
                peaks = {
                    name: round(processes.peak_rss_mb(child.process.pid), 1)
                    for name, child in named.items()
                }
                time.sleep(REST_S)
                after = rest_rss(named)
    lines = [
        Line(
            f"{name}: at rest",
            at_rest[name],
            "MB",
            note=processes.load_text(load_at_rest) if name == "worker" else "",
        )
        for name in ("worker", "watcher", "api")
    ]
    lines += [
        Line(
            f"worker: peak under load ({WORKER_RUNS} runs, pool limit {POOL_LIMIT})",
            peaks["worker"],
            "MB",
            note="the worker process alone (VmHWM)",
        ),
        Line(
            "  worker + its flow-run processes, sampled peak",
            round(worker_peak.group_mb, 1),
            "MB",
            note=f"up to {worker_peak.group_processes} processes",
        ),
        Line(
            f"watcher: peak under load ({EDIT_ROUNDS} x {EDITED} rows edited)",
            peaks["watcher"],
            "MB",
            note=f"{watcher_s / EDIT_ROUNDS:.2f} s per round of edits to Prefect",
        ),
        Line(
            f"api: peak under load ({API_REQUESTS} requests, {API_CLIENTS} at once)",
            peaks["api"],
            "MB",
            note=f"p50 {1000 * statistics.median(latencies):.0f} ms, p95 "
            f"{1000 * harness.percentile(latencies, 95):.0f} ms; "
            f"{processes.load_text(load_api_note)}",
        ),
    ]
    lines += [Line(f"{name}: at rest after the loads", after[name], "MB") for name in after]
    details = {
        "at_rest_mb": at_rest,
        "peak_mb": peaks,
        "worker_group_peak_mb": round(worker_peak.group_mb, 1),
        "worker_group_processes_max": worker_peak.group_processes,
        "after_load_mb": after,
        "api_latency_s": {
            "p50": statistics.median(latencies),
            "p95": harness.percentile(latencies, 95),
            "max": max(latencies),
        },
        "watcher_edit_rounds_s": round(watcher_s, 2),
        "load_at_rest": load_at_rest,
    }
    return lines, details


def _healthy(base_url: str) -> bool:
    try:
        httpx.get(f"{base_url}/health", timeout=2)
    except httpx.HTTPError:
        return False
    return True


# -- B. jobctl up ----------------------------------------------------------------------------


def bench_up(console: Console) -> tuple[list[Line], dict[str, Any]]:
    with processes.temporary_dir("jobctl-bench-up-") as folder:
        url = f"sqlite:///{folder / 'jobctl.db'}"
        engine = create_db_engine(url)
        migrate.upgrade(engine)
        repository = Repository(engine)
        row = repository.add_schedule(
            ScheduleSpec(cron="* * * * *", job_name="processData", param=["up"], max_retries=0)
        )
        pool = f"bench-up-{uuid.uuid4().hex[:6]}"
        env = base_env(JOBCTL_DATABASE_URL=url, JOBCTL_WORK_POOL=pool)
        args = [str(processes.JOBCTL_BIN), "up", "--no-demo", "--state-dir", str(folder / "state")]
        load = processes.load_note()
        console.log("footprint: jobctl up in a fresh folder")
        started = time.perf_counter()
        up = Child([*args, "--status-every", "5"], env=env, log_path=folder / "up.log")
        try:
            match = processes.wait_until(
                lambda: re.search(r"Prefect UI: (http://127\.0\.0\.1:\d+)", up.log_tail(100_000)),
                UP_TIMEOUT_S,
                "jobctl up ready",
                up,
            )
            ready_s = time.perf_counter() - started
            assert match is not None
            api_url = match.group(1) + "/api"
            with temporary_settings(updates={PREFECT_API_URL: api_url}):
                submitted_s = asyncio.run(_one_manual_run(pool)) + ready_s
            processes.wait_until(
                lambda: [
                    a
                    for a in repository.list_history(HistoryFilter(schedule_id=row.id))
                    if a.status is JobStatus.SUCCESS
                ],
                UP_TIMEOUT_S,
                "the first scheduled run recorded",
                up,
            )
            scheduled_s = time.perf_counter() - started
            stop_started = time.perf_counter()
            os.kill(up.process.pid, signal.SIGINT)
            up.process.wait(timeout=120)
            stop_s = time.perf_counter() - stop_started
        finally:
            up.stop()
            engine.dispose()
    minute_note = "includes the wait for the next minute"
    lines = [
        Line("jobctl up: ready (server, deploy, worker, first sync)", ready_s, "s"),
        Line("  + a run submitted at ready, completed", submitted_s, "s"),
        Line("  first scheduled run ('* * * * *') recorded SUCCESS", scheduled_s, "s"),
        Line("Ctrl-C: every child stopped", stop_s, "s"),
    ]
    lines[0].note = processes.load_text(load)
    lines[2].note = minute_note
    details = {
        "ready_s": ready_s,
        "submitted_run_done_s": submitted_s,
        "first_scheduled_run_s": scheduled_s,
        "stop_s": stop_s,
        "load": load,
    }
    return lines, details


async def _one_manual_run(pool: str) -> float:
    started = time.perf_counter()
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(
            manual_deployment_name("processData", pool)
        )
        run = await client.create_flow_run_from_deployment(
            deployment.id, parameters={"param": ["up"]}
        )
        while True:
            state = (await client.read_flow_run(run.id)).state
            if state is not None and state.is_final():
                break
            if time.perf_counter() - started > UP_TIMEOUT_S:
                raise TimeoutError("the submitted run did not finish")
            await asyncio.sleep(0.25)
    return time.perf_counter() - started


def run(quick: bool, console: Console) -> bool:
    started_at = datetime.now(UTC)
    with harness.sigterm_raises(), Databases() as databases:
        process_lines, process_details = bench_processes(databases, console)
    up_lines, up_details = bench_up(console)
    report.print_lines(
        console,
        "Footprint — resident memory (MB) and jobctl up",
        process_lines + up_lines,
        caption="shared 2-core machine: load averages (1/5/15 min) in the note",
    )
    path = harness.write_results(
        NAME,
        {
            "started_at": started_at.isoformat(),
            "config": {
                "rows": ROWS,
                "history_rows": HISTORY_ROWS,
                "worker_runs": WORKER_RUNS,
                "pool_limit": POOL_LIMIT,
                "edited": EDITED,
                "edit_rounds": EDIT_ROUNDS,
                "api_requests": API_REQUESTS,
                "api_clients": API_CLIENTS,
            },
            "processes": process_details,
            "up": up_details,
            "lines": [line.as_json() for line in process_lines + up_lines],
        },
    )
    console.print(f"results written to {path}")
    return True
