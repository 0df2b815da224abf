"""Load: many schedules kept in sync under steady edits; history written at a steady rate.

1. Sync load (``--rows``, default 10,000): the rows in PostgreSQL tables (a throwaway
   database), a PostgreSQL-backed Prefect server (scheduler service off, as in
   ``scale_bench``: with it on, 10,000 cron deployments make it insert a million runs), and a
   real ``jobctl sync --watch`` child. The watcher's cold sync is timed (deployments counted
   every few seconds); then every minute for ``--minutes`` minutes, 1 % of the rows change by
   plain SQL, one statement at a time (valid edits of cron, param within its job's type,
   priority, timeout, description; ``isActive`` toggles; a few deletes and inserts). Each
   edit must change its row's spec as meant (a value edit its version, a toggle its paused
   state), else the run stops. After each batch: the time until Prefect shows every change of the
   batch (the changed deployments read by name, every half second, against the specs the rows
   now want), then a dry-run sync with a full read of Prefect, which must plan nothing. At the
   end: one deployment per row, none extra, versions and ``paused`` as the rows want, the
   watcher alive, its peak RSS.
2. History load (``--attempts-per-minute``, default 1,000): on a throwaway PostgreSQL
   database, ``--writers`` processes (default 4) record attempts through ``HistoryRecorder``
   (what the flow body calls: ``started``, then ``finished`` with SUCCESS or FAILED), each
   attempt running 0.2 to 5 s, some runs retried (2 or 3 attempts), paced to the target rate;
   every 10 s this process runs the reconciler's queries (``list_processing``,
   ``flow_runs_with_history``). At the end: rows = attempts issued, none PROCESSING, every
   (flowRunId, attempt) unique, the rate per minute, write latency percentiles.

Run: ``.venv/bin/python -m bench.load_bench [--minutes 10] [--rows 10000]
[--attempts-per-minute 1000] [--only sync|history]``. Results go to
``bench/results/load-<UTC timestamp>.json``, with a top-level ``checks`` list (name, done,
checked, result, figures); the exit status is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import logging
import multiprocessing
import os
import queue
import random
import statistics
import sys
import time
import traceback
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from prefect.client.orchestration import PrefectClient, get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from bench import harness, processes
from bench.harness import CpuMeter, Databases
from bench.sync_bench import (
    CHANGE_KINDS,
    BenchRowError,
    UnexpectedPlan,
    apply_edit,
    edited,
    read_rows,
    require_valid,
    seed_rows,
)
from deployments.plan import Action
from deployments.spec import MANAGED_TAG, DeploymentSpec, deployment_name
from deployments.sync import desired_state, sync
from flows.history import AttemptKey, HistoryRecorder
from jobctl.db import create_db_engine
from jobctl.models import JobStatus
from jobctl.prefect.gateway.client import ClientGateway
from jobctl.records import Schedule
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.fixtures.processes import Child

NAME = "load"
DEFAULT_MINUTES = 10
DEFAULT_ROWS = 10_000
DEFAULT_RATE = 1_000
DEFAULT_WRITERS = 4

# -- sync load
CHANGED_FRACTION = 0.01
BATCH_EVERY_S = 60.0
CONVERGE_TIMEOUT_S = 300.0
POLL_S = 0.5
COLD_POLL_S = 5.0
COLD_TIMEOUT_S_PER_ROW = 0.6  # generous: a create costs the server 45-130 ms of CPU
COLD_TIMEOUT_MIN_S = 600.0
NAME_PAGE = 200

# -- history load
WRITER_READY_TIMEOUT_S = 300.0  # the writers import jobctl and Prefect, then connect
ATTEMPT_S = (0.2, 5.0)  # how long an attempt "runs" between its start and its end
RETRY_DELAY_S = 1.0
RUN_ATTEMPTS = ((1, 0.80), (2, 0.15), (3, 0.05))
FINAL_FAILED = 0.10
MONITOR_EVERY_S = 10.0
MIN_RATE_FRACTION = 0.95
WRITER_GRACE_S = 120.0


@dataclass
class Check:
    """One line of the reliability report: what was done, what was checked, the figures."""

    name: str
    done: str
    checked: str
    passed: bool
    figures: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "done": self.done,
            "checked": self.checked,
            "result": "pass" if self.passed else "fail",
            "figures": self.figures,
        }


def load_now() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


# =========================================================================================
# 1. sync load
# =========================================================================================


class ChangedRows(Repository):
    """The repository, but ``list_schedules`` reads only some rows: their specs, as the sync
    computes them (``desired_state``), without reading the whole table."""

    def __init__(self, engine: Engine, ids: Sequence[str]) -> None:
        super().__init__(engine)
        self.ids = list(ids)

    def list_schedules(self) -> list[Schedule]:
        found = (self.get_schedule_or_none(schedule_id) for schedule_id in self.ids)
        return [schedule for schedule in found if schedule is not None]


@dataclass
class SyncLoad:
    rows: int
    minutes: int
    database: str
    settings: Settings
    repository: Repository
    watcher: Child
    watcher_started: float
    meter: CpuMeter
    console: Console
    live: list[str]
    rng: random.Random = field(default_factory=lambda: random.Random(8))
    rss_mb: list[float] = field(default_factory=list)

    @property
    def dsn(self) -> str:
        return harness.libpq_dsn(self.database)


@dataclass
class Batch:
    minute: int
    started_late_s: float
    changes: dict[str, int]
    converged_s: float | None = None
    row_p50_s: float | None = None
    row_max_s: float | None = None
    not_matched: int = 0
    dry_run_noop: bool = False
    dry_run_plan: dict[str, int] = field(default_factory=dict)
    dry_run_s: float = 0.0
    server_cpu_s: float = 0.0
    loadavg: list[float] = field(default_factory=list)
    watcher_rss_mb: float = 0.0

    @property
    def ok(self) -> bool:
        return self.converged_s is not None and self.dry_run_noop


def change_mix(count: int) -> dict[str, int]:
    """How a batch of ``count`` changes splits: 20 % cron, 20 % param (within its job's
    type), 10 % priority, 10 % timeout, 14 % isActive, 3 % deletes and as many inserts, the
    rest description."""
    moves = max(1, round(count * 0.03)) if count >= 10 else 0
    mix = {
        "delete": moves,
        "insert": moves,
        "toggle_active": count * 14 // 100,
        "cron": count * 20 // 100,
        "param": count * 20 // 100,
        "priority": count * 10 // 100,
        "timeout": count * 10 // 100,
    }
    mix["description"] = count - sum(mix.values())
    return mix


@dataclass(frozen=True)
class Applied:
    """A batch as made: what the rows want now, and what each edit must do to its row."""

    present: list[str]  # ids that must now have a deployment as they are
    deleted: list[str]  # ids that must have none
    kinds: dict[str, str]  # id of an edited row -> its kind of change
    before: dict[str, DeploymentSpec]  # the edited rows' specs before the batch


def apply_batch(load: SyncLoad, minute: int, mix: dict[str, int]) -> Applied:
    """The batch by plain SQL, one autocommitted statement a change (so one NOTIFY each).

    Each value edit is ``sync_bench.edited`` (a valid change of its field) and is
    validated before it is written; inserted rows are ``seed_rows``, validated too.
    """
    edited_count = sum(count for kind, count in mix.items() if kind != "insert")
    chosen = load.rng.sample(load.live, edited_count)
    kinds = [kind for kind in mix if kind != "insert" for _ in range(mix[kind])]
    before, rejected = desired_state(load.settings, ChangedRows(load.repository.engine, chosen))
    if rejected:
        raise BenchRowError(f"minute {minute}: rows rejected before the batch: {rejected}")
    with psycopg.connect(load.dsn, autocommit=True) as conn:
        current = read_rows(conn, chosen)
        edits = {
            schedule_id: edited(current[schedule_id], kind, f"minute {minute}")
            for kind, schedule_id in zip(kinds, chosen, strict=True)
            if kind in CHANGE_KINDS
        }
        require_valid(list(edits.values()), f"minute {minute}")
        for kind, schedule_id in zip(kinds, chosen, strict=True):
            if kind == "delete":
                conn.execute('DELETE FROM "JobSchedule" WHERE id = %s', (schedule_id,))
            elif kind == "toggle_active":
                conn.execute(
                    'UPDATE "JobSchedule" SET "isActive" = NOT "isActive" WHERE id = %s',
                    (schedule_id,),
                )
            else:
                apply_edit(conn, edits[schedule_id], kind)
    inserted = seed_rows(load.database, mix["insert"], seed=1_000_000 + minute)
    deleted = [sid for kind, sid in zip(kinds, chosen, strict=True) if kind == "delete"]
    kept = {sid: kind for kind, sid in zip(kinds, chosen, strict=True) if kind != "delete"}
    gone = set(deleted)
    load.live = [sid for sid in load.live if sid not in gone] + inserted
    return Applied([*kept, *inserted], deleted, kept, before)


def expect_changes(applied: Applied, specs: dict[str, DeploymentSpec], minute: int) -> None:
    """Each edit must change its deployment as meant: a value edit its version (an update),
    a toggle its paused state and nothing else; otherwise the batch stops the run."""
    wrong: list[str] = []
    for schedule_id, kind in applied.kinds.items():
        old, new = applied.before[schedule_id], specs[schedule_id]
        if kind == "toggle_active":
            if new.paused == old.paused or new.version != old.version:
                wrong.append(f"{schedule_id}: toggled, but paused {old.paused} -> {new.paused}")
        elif new.version == old.version:
            wrong.append(f"{schedule_id}: its {kind} edit leaves the deployment as it was")
    if wrong:
        raise UnexpectedPlan(
            f"minute {minute}: {len(wrong)} edits that would not do what the bench meant; "
            "no figure is reported: " + " | ".join(wrong[:10])
        )


async def read_by_name(
    client: PrefectClient, pool: str, names: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """The deployments of ``pool`` with these names, as plain JSON."""
    found: dict[str, list[dict[str, Any]]] = {}
    for start in range(0, len(names), NAME_PAGE):
        response = await client.request(
            "POST",
            "/deployments/filter",
            json={
                "deployments": {"name": {"any_": list(names[start : start + NAME_PAGE])}},
                "work_pools": {"name": {"any_": [pool]}},
                "limit": NAME_PAGE,
            },
        )
        for item in response.json():
            found.setdefault(item["name"], []).append(item)
    return found


async def count_schedule_deployments(client: PrefectClient, pool: str) -> int:
    response = await client.request(
        "POST",
        "/deployments/count",
        json={
            "deployments": {"tags": {"all_": [MANAGED_TAG]}, "name": {"like_": "schedule-"}},
            "work_pools": {"name": {"any_": [pool]}},
        },
    )
    return int(response.json())


async def dry_run(load: SyncLoad, client: PrefectClient) -> tuple[bool, dict[str, int], float]:
    """A dry-run sync with a full read of Prefect: does it plan nothing for every live row?"""
    started = time.perf_counter()
    report = await sync(load.settings, load.repository, ClientGateway(client), dry_run=True)
    seconds = time.perf_counter() - started
    counts = {action.value: n for action, n in report.plan.counts().items() if n}
    noop = (
        report.plan.is_noop
        and not report.plan.rejected
        and report.plan.counts()[Action.UNCHANGED] == len(load.live)
    )
    return noop, counts, seconds


async def cold_sync(load: SyncLoad) -> Check:
    timeout_s = max(COLD_TIMEOUT_MIN_S, load.rows * COLD_TIMEOUT_S_PER_ROW)
    before = load.meter.sample()
    count, last_log = 0, time.perf_counter()
    figures: dict[str, Any] = {"rows": load.rows, "timeout_s": timeout_s}
    async with get_client() as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                count = await count_schedule_deployments(client, load.settings.work_pool)
            elapsed = time.perf_counter() - load.watcher_started
            if count >= load.rows or not load.watcher.alive() or elapsed > timeout_s:
                break
            if time.perf_counter() - last_log > 60:
                last_log = time.perf_counter()
                load.console.log(
                    f"cold sync: {count:,}/{load.rows:,} deployments after {elapsed:.0f}s "
                    f"(load {load_now()})"
                )
            await asyncio.sleep(COLD_POLL_S)
        cold_s = time.perf_counter() - load.watcher_started
        spent = load.meter.sample() - before
        figures |= {
            "deployments_seen": count,
            "seconds_to_all_deployments": round(cold_s, 1),
            "deployments_per_s": round(count / cold_s, 2),
            "prefect_server_cpu_s": round(spent.server_s, 1),
            "postgres_cpu_s": round(spent.postgres_s, 1),
            "other_programs_cpus": round(spent.others_cores(), 2),
            "loadavg_after": load_now(),
        }
        noop = False
        if count >= load.rows:
            # The watcher writes the jobs' manual deployments after the plan: let it finish.
            deadline = time.perf_counter() + CONVERGE_TIMEOUT_S
            while not noop and time.perf_counter() < deadline:
                noop, plan, seconds = await dry_run(load, client)
                figures |= {"dry_run_plan": plan, "dry_run_s": round(seconds, 2)}
                if not noop:
                    await asyncio.sleep(5)
    load.rss_mb.append(processes.rss_mb(load.watcher.process.pid))
    load.console.log(f"cold sync: {count:,} deployments in {cold_s:.0f}s; dry run no-op: {noop}")
    return Check(
        name="sync load: cold sync by the watcher",
        done=f"`jobctl sync --watch` started on {load.rows:,} rows in PostgreSQL tables, "
        "against an empty work pool of a PostgreSQL-backed Prefect server (scheduler off); "
        f"schedule deployments counted every {COLD_POLL_S:g} s",
        checked=f"all {load.rows:,} deployments exist within {timeout_s:.0f} s, and then a "
        "dry-run sync with a full read plans nothing",
        passed=count == load.rows and noop,
        figures=figures,
    )


async def run_batch(load: SyncLoad, minute: int, due: float) -> Batch:
    mix = change_mix(max(1, round(load.rows * CHANGED_FRACTION)))
    batch = Batch(minute, round(max(0.0, time.monotonic() - due), 2), mix)
    before = load.meter.sample()
    applied = await asyncio.to_thread(apply_batch, load, minute, mix)
    committed = time.perf_counter()
    present, deleted = applied.present, applied.deleted
    specs, rejected = await asyncio.to_thread(
        desired_state, load.settings, ChangedRows(load.repository.engine, present)
    )
    if rejected or len(specs) != len(present):
        raise BenchRowError(f"minute {minute}: the bench made bad rows: {rejected}")
    expect_changes(applied, specs, minute)
    names = [spec.name for spec in specs.values()] + [deployment_name(sid) for sid in deleted]
    first_seen: dict[str, float] = {}
    async with get_client() as client:
        while True:
            found = await read_by_name(client, load.settings.work_pool, names)
            now = time.perf_counter() - committed
            missing = 0
            for sid, spec in specs.items():
                items = found.get(spec.name, [])
                if (
                    len(items) == 1
                    and items[0].get("version") == spec.version
                    and bool(items[0].get("paused")) == spec.paused
                ):
                    first_seen.setdefault(sid, now)
                else:
                    missing += 1
            for sid in deleted:
                if deployment_name(sid) in found:
                    missing += 1
                else:
                    first_seen.setdefault(sid, now)
            batch.not_matched = missing
            if not missing:
                batch.converged_s = round(now, 3)
                break
            if now > CONVERGE_TIMEOUT_S or not load.watcher.alive():
                break
            await asyncio.sleep(POLL_S)
        latencies = list(first_seen.values())
        if latencies:
            batch.row_p50_s = round(statistics.median(latencies), 3)
            batch.row_max_s = round(max(latencies), 3)
        batch.dry_run_noop, batch.dry_run_plan, seconds = await dry_run(load, client)
        batch.dry_run_s = round(seconds, 2)
    batch.server_cpu_s = round((load.meter.sample() - before).server_s, 1)
    batch.loadavg = load_now()
    batch.watcher_rss_mb = round(processes.rss_mb(load.watcher.process.pid), 1)
    load.rss_mb.append(batch.watcher_rss_mb)
    load.console.log(
        f"minute {minute + 1}: {sum(mix.values())} changes, converged in "
        f"{batch.converged_s if batch.converged_s is not None else 'NEVER'} s, dry run "
        f"{'no-op' if batch.dry_run_noop else batch.dry_run_plan} ({batch.dry_run_s} s), "
        f"load {batch.loadavg}"
    )
    return batch


async def final_state(load: SyncLoad) -> Check:
    """Independent of the plan: every deployment against every row, field by field."""
    specs, rejected = await asyncio.to_thread(desired_state, load.settings, load.repository)
    with psycopg.connect(load.dsn) as conn:
        active: dict[str, bool] = dict(
            conn.execute('SELECT id, "isActive" FROM "JobSchedule"').fetchall()
        )
    async with get_client() as client:
        deployed = await ClientGateway(client).read_managed_deployments(load.settings.work_pool)
    per_row = Counter(d.schedule_id for d in deployed)
    figures: dict[str, int] = {
        "rows": len(active),
        "deployments": len(deployed),
        "rows_without_deployment": len(set(active) - set(per_row)),
        "deployments_without_row": len(set(per_row) - set(active)),
        "rows_with_several_deployments": sum(1 for n in per_row.values() if n > 1),
        "paused_not_inactive": sum(
            1
            for d in deployed
            if d.schedule_id in active and d.paused != (not active[d.schedule_id])
        ),
        "version_not_as_row_wants": sum(
            1
            for d in deployed
            if d.schedule_id in specs and d.version != specs[d.schedule_id].version
        ),
        "rejected_rows": len(rejected),
    }
    passed = figures["rows"] == figures["deployments"] == len(load.live) and not any(
        value for key, value in figures.items() if key not in ("rows", "deployments")
    )
    return Check(
        name="sync load: final state exact",
        done="after the last batch, every managed deployment of the pool read by tag and "
        "compared with every row of the table",
        checked="one deployment per row, none extra, paused = not isActive, each deployment's "
        "version = the hash of the spec its row wants",
        passed=passed,
        figures=figures,
    )


def watcher_errors(watcher: Child) -> list[str]:
    lines = watcher.log_path.read_text(errors="replace").splitlines()
    return [line for line in lines if "ERROR" in line or "Traceback" in line or "failed" in line]


async def sync_scenario(load: SyncLoad) -> tuple[list[Check], list[Batch]]:
    checks = [await cold_sync(load)]
    batches: list[Batch] = []
    if checks[0].passed:
        started = time.monotonic()
        for minute in range(load.minutes):
            due = started + minute * BATCH_EVERY_S
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            batches.append(await run_batch(load, minute, due))
            if not load.watcher.alive():
                break
        converged = [b.converged_s for b in batches if b.converged_s is not None]
        changes = sum(sum(b.changes.values()) for b in batches)
        checks.append(
            Check(
                name="sync load: 1 % of the rows changed every minute, kept in sync",
                done=f"{len(batches)} batches, one a minute, each of "
                f"{sum(change_mix(max(1, round(load.rows * CHANGED_FRACTION))).values())} "
                "changes by plain SQL, one autocommitted statement each (valid edits of "
                "cron, param, priority, timeout and description, each checked to change its "
                "row's spec; isActive toggles; deletes and inserts); after each, the changed "
                f"deployments read by name every {POLL_S:g} s",
                checked="every batch visible in Prefect before the next one is due (< 60 s): "
                "each changed row's deployment with the version and paused state the row "
                "wants, each deleted row's deployment gone",
                passed=len(batches) == load.minutes
                and len(converged) == len(batches)
                and max(converged, default=0) < BATCH_EVERY_S,
                figures={
                    "batches": len(batches),
                    "changes": changes,
                    "convergence_s_per_minute": [b.converged_s for b in batches],
                    "convergence_max_s": max(converged, default=None),
                    "convergence_median_s": round(statistics.median(converged), 3)
                    if converged
                    else None,
                    "row_latency_median_s_per_minute": [b.row_p50_s for b in batches],
                    "batches_late_s": [b.started_late_s for b in batches],
                    "loadavg_per_minute": [b.loadavg for b in batches],
                    "prefect_server_cpu_s_per_minute": [b.server_cpu_s for b in batches],
                },
            )
        )
        checks.append(
            Check(
                name="sync load: nothing dropped",
                done="after each batch had converged, a dry-run sync with a full read of "
                "Prefect (`deployments.sync.sync(..., dry_run=True)`)",
                checked="every dry run plans nothing: every live row unchanged, no create, "
                "update, pause, resume, delete or rejected row",
                passed=len(batches) == load.minutes and all(b.ok for b in batches),
                figures={
                    "dry_runs_noop": sum(1 for b in batches if b.dry_run_noop),
                    "dry_run_plans": [b.dry_run_plan for b in batches],
                    "dry_run_s": [b.dry_run_s for b in batches],
                    "rows_not_matched_at_timeout": [b.not_matched for b in batches],
                },
            )
        )
        checks.append(await final_state(load))
    pid = load.watcher.process.pid
    errors = watcher_errors(load.watcher)
    alive = load.watcher.alive()
    ran_s = time.perf_counter() - load.watcher_started
    checks.append(
        Check(
            name="sync load: the watcher stays up",
            done=f"`jobctl sync --watch` ran the whole load ({ran_s:.0f} s)",
            checked="still running at the end, no error in its log; its memory is reported",
            passed=alive and not errors,
            figures={
                "alive": alive,
                "peak_rss_mb": round(processes.peak_rss_mb(pid), 1),
                "rss_mb_after_cold_then_each_minute": load.rss_mb,
                "error_lines": errors[-20:],
            },
        )
    )
    return checks, batches


def run_sync(
    databases: Databases, rows: int, minutes: int, console: Console
) -> tuple[list[Check], dict[str, Any]]:
    database = databases.create_migrated("load")
    url = harness.psycopg_url(database)
    settings = Settings(database_url=url, work_pool=f"load-{uuid.uuid4().hex[:6]}")
    console.log(f"sync load: seeding {rows:,} rows")
    live = seed_rows(database, rows, seed=rows)
    engine = create_db_engine(url)
    server_env = {"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"}
    try:
        with (
            harness.prefect_server(databases, **server_env) as server,
            temporary_settings(updates={PREFECT_API_URL: server.api_url}),
            processes.temporary_dir("jobctl-load-") as directory,
        ):
            console.log(
                f"sync load: Prefect server up in {server.start_s:.0f}s; starting the watcher"
            )
            env = processes.stack_env(server.api_url, url, settings.work_pool)
            args = [str(processes.JOBCTL_BIN), "sync", "--watch"]
            watcher_started = time.perf_counter()
            with processes.child(args, env, directory / "watcher.log") as watcher:
                log_tail = ""
                load = SyncLoad(
                    rows=rows,
                    minutes=minutes,
                    database=database,
                    settings=settings,
                    repository=Repository(engine),
                    watcher=watcher,
                    watcher_started=watcher_started,
                    meter=CpuMeter(server),
                    console=console,
                    live=live,
                )
                try:
                    checks, batches = asyncio.run(sync_scenario(load))
                except Exception as exc:
                    exc.add_note(f"watcher log:\n{watcher.log_tail(2000)}")
                    raise
                log_tail = watcher.log_tail(2000)
    finally:
        engine.dispose()
        databases.drop(database)
    details = {
        "batches": [asdict(batch) for batch in batches],
        "change_mix": change_mix(max(1, round(rows * CHANGED_FRACTION))),
        "watcher_log_tail": log_tail,
    }
    return checks, details


# =========================================================================================
# 2. history load
# =========================================================================================


@dataclass(frozen=True)
class WriterPlan:
    index: int
    writers: int
    url: str
    duration_s: float
    per_minute: float  # this writer's attempts a minute
    seed: int


class _Counting(logging.Handler):
    """Counts the warnings of ``jobctl.history``: the recorder swallows failed writes."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _attempts_of_a_run(rng: random.Random) -> int:
    draw, total = rng.random(), 0.0
    for attempts, weight in RUN_ATTEMPTS:
        total += weight
        if draw < total:
            return attempts
    return 1


def writer_main(plan: WriterPlan, results: Any, start: Any, go: Any) -> None:
    """One writer process: attempts started on a fixed schedule, finished 0.2 to 5 s later.

    It says it is ready once connected, then waits for ``go``; ``start`` holds the
    ``time.time()`` of the first slot, the same for every writer.
    """
    try:
        results.put(_write(plan, results, start, go))
    except BaseException:
        results.put({"index": plan.index, "error": traceback.format_exc()})


def _write(plan: WriterPlan, results: Any, start: Any, go: Any) -> dict[str, Any]:
    rng = random.Random(plan.seed)
    recorder = HistoryRecorder(lambda: Settings(database_url=plan.url))
    swallowed = _Counting()
    logging.getLogger("jobctl.history").addHandler(swallowed)
    recorder.repository.ping()  # connect before the clock starts
    results.put({"ready": plan.index})
    if not go.wait(WRITER_READY_TIMEOUT_S + 60):
        raise TimeoutError("never told to start")
    interval = 60.0 / plan.per_minute
    first = float(start.value) + plan.index * interval / plan.writers
    end = float(start.value) + plan.duration_s
    # (finish at, seq, key, status, attempts of the run)
    running: list[tuple[float, int, AttemptKey, JobStatus, int]] = []
    retries: deque[tuple[float, AttemptKey, int]] = deque()  # (ready at, last key, attempts)
    start_ms: list[float] = []
    finish_ms: list[float] = []
    statuses: Counter[str] = Counter()
    slot, seq, max_lag, runs = 0, 0, 0.0, 0
    while True:
        now = time.time()
        if running and running[0][0] <= now:
            _, _, key, status, attempts = heapq.heappop(running)
            started = time.perf_counter()
            error = None if status is JobStatus.SUCCESS else f"load: attempt {key.attempt} failed"
            recorder.finished(key, status, error)
            finish_ms.append(1000 * (time.perf_counter() - started))
            statuses[status.value] += 1
            if key.attempt < attempts:
                retries.append((now + RETRY_DELAY_S, key, attempts))
            continue
        due = first + slot * interval
        if due < end and due <= now:
            max_lag = max(max_lag, now - due)
            if retries and retries[0][0] <= now:
                _, last, attempts = retries.popleft()
                key = AttemptKey(
                    last.flow_run_id, last.attempt + 1, last.job_name, last.param, None
                )
            else:
                runs += 1
                attempts = _attempts_of_a_run(rng)
                key = AttemptKey(str(uuid.uuid4()), 1, "processData", ["load", str(slot)], None)
            final = key.attempt == attempts
            status = (
                JobStatus.FAILED if not final or rng.random() < FINAL_FAILED else JobStatus.SUCCESS
            )
            started = time.perf_counter()
            recorder.started(key)
            start_ms.append(1000 * (time.perf_counter() - started))
            seq += 1
            heapq.heappush(
                running, (time.time() + rng.uniform(*ATTEMPT_S), seq, key, status, attempts)
            )
            slot += 1
            continue
        if due >= end and not running:
            break
        wake = min(running[0][0] if running else end, due if due < end else end)
        time.sleep(max(0.0, min(wake - time.time(), 1.0)))
    recorder.repository.engine.dispose()
    return {
        "index": plan.index,
        "issued": slot,
        "runs": runs,
        "retries_not_started": len(retries),
        "statuses": dict(statuses),
        "start_ms": start_ms,
        "finish_ms": finish_ms,
        "max_lag_s": round(max_lag, 3),
        "swallowed": swallowed.messages[:20],
        "swallowed_count": len(swallowed.messages),
    }


def _monitor(repository: Repository) -> dict[str, float]:
    """What the reconciler asks the database: the PROCESSING attempts, which runs have rows."""
    started = time.perf_counter()
    processing = repository.list_processing()
    list_s = time.perf_counter() - started
    ids = [a.flow_run_id for a in processing if a.flow_run_id][:500]
    started = time.perf_counter()
    with_rows = repository.flow_runs_with_history(ids)
    lookup_s = time.perf_counter() - started
    if len(with_rows) != len(set(ids)):
        raise RuntimeError("flow_runs_with_history missed runs that have rows")
    return {"processing": len(processing), "list_ms": 1000 * list_s, "lookup_ms": 1000 * lookup_s}


def run_history(
    databases: Databases, minutes: int, rate: int, writers: int, console: Console
) -> tuple[list[Check], dict[str, Any]]:
    database = databases.create_migrated("history_load")
    url = harness.psycopg_url(database)
    duration_s = minutes * 60.0
    context = multiprocessing.get_context("spawn")
    results: Any = context.Queue()
    start = context.Value("d", 0.0)
    go = context.Event()
    plans = [
        WriterPlan(i, writers, url, duration_s, rate / writers, seed=100 + i)
        for i in range(writers)
    ]
    procs = [
        context.Process(target=writer_main, args=(plan, results, start, go), daemon=True)
        for plan in plans
    ]
    engine = create_db_engine(url)
    repository = Repository(engine)
    reports: list[dict[str, Any]] = []
    samples: list[dict[str, float]] = []
    loads: list[list[float]] = []
    console.log(f"history load: {writers} writers, {rate:,} attempts/min for {minutes} min")
    try:
        for proc in procs:
            proc.start()
        ready, waited = 0, time.monotonic() + WRITER_READY_TIMEOUT_S
        while ready < writers and time.monotonic() < waited:
            with contextlib.suppress(queue.Empty):
                message = results.get(timeout=1.0)
                if "ready" not in message:
                    reports.append(message)  # a writer that failed before it was ready
                    break
                ready += 1
        start_at = time.time() + 1.0
        start.value = start_at
        go.set()
        deadline = start_at + duration_s + WRITER_GRACE_S
        next_sample = start_at
        while len(reports) < writers and time.time() < deadline:
            with contextlib.suppress(queue.Empty):
                reports.append(results.get(timeout=1.0))
                continue
            if time.time() >= next_sample:
                next_sample += MONITOR_EVERY_S
                samples.append(_monitor(repository))
                if len(samples) % 6 == 0:
                    loads.append(load_now())
                    console.log(
                        f"history load: minute {len(samples) // 6}, "
                        f"{samples[-1]['processing']} PROCESSING, load {loads[-1]}"
                    )
            if not any(proc.is_alive() for proc in procs) and results.empty():
                break
        for proc in procs:
            proc.join(timeout=30)
        return _history_checks(database, plans, start_at, reports, samples, loads, minutes, rate)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=10)
        engine.dispose()
        databases.drop(database)


def _history_checks(
    database: str,
    plans: Sequence[WriterPlan],
    start_at: float,
    reports: Sequence[dict[str, Any]],
    samples: Sequence[dict[str, float]],
    loads: Sequence[list[float]],
    minutes: int,
    rate: int,
) -> tuple[list[Check], dict[str, Any]]:
    errors = [r["error"] for r in reports if "error" in r]
    good = [r for r in reports if "error" not in r]
    issued = sum(r["issued"] for r in good)
    expected: Counter[str] = Counter()
    for report in good:
        expected.update(report["statuses"])
    swallowed = sum(r["swallowed_count"] for r in good)
    start_ms = [v for r in good for v in r["start_ms"]]
    finish_ms = [v for r in good for v in r["finish_ms"]]
    both_ms = start_ms + finish_ms
    with psycopg.connect(harness.libpq_dsn(database)) as conn:
        row = conn.execute(
            """SELECT count(*),
                      count(*) FILTER (WHERE status::text = 'PROCESSING'),
                      count(*) FILTER (WHERE "endAt" IS NULL),
                      count(*) FILTER (WHERE status::text = 'SUCCESS'),
                      count(*) FILTER (WHERE status::text = 'FAILED'),
                      count(*) FILTER (WHERE "flowRunId" IS NULL OR attempt IS NULL),
                      count(DISTINCT "flowRunId")
               FROM "JobHistory" """
        ).fetchone()
        assert row is not None
        rows, processing, open_rows, success, failed, unkeyed, runs = row
        duplicated = conn.execute(
            """SELECT count(*) FROM (SELECT 1 FROM "JobHistory"
               GROUP BY "flowRunId", attempt HAVING count(*) > 1) AS d"""
        ).fetchone()
        per_minute: dict[int, int] = dict(
            conn.execute(
                """SELECT floor((extract(epoch FROM "startAt") - %s) / 60)::int AS m, count(*)
                   FROM "JobHistory" GROUP BY 1 ORDER BY 1""",
                (start_at,),
            ).fetchall()
        )
    duplicates = int(duplicated[0]) if duplicated else 0
    full_minutes = [int(per_minute.get(m, 0)) for m in range(minutes)]
    complete = not errors and len(good) == len(plans)
    done = (
        f"{len(plans)} writer processes recorded attempts through `HistoryRecorder.started` "
        "then `.finished` (SUCCESS or FAILED; each attempt open 0.2 to 5 s; ~20 % of the runs "
        f"retried) on a PostgreSQL database, paced to {rate:,} attempt starts a minute for "
        f"{minutes} min; every {MONITOR_EVERY_S:g} s, the reconciler's queries"
    )
    max_lag = max((r["max_lag_s"] for r in good), default=None)
    checks = [
        Check(
            name="history load: rate sustained",
            done=done,
            checked=f"every minute ≥ {MIN_RATE_FRACTION:.0%} of {rate:,} attempts started "
            "(counted by startAt in the table); write latencies reported",
            passed=complete and min(full_minutes, default=0) >= MIN_RATE_FRACTION * rate,
            figures={
                "attempts_per_minute": full_minutes,
                "min_per_minute": min(full_minutes, default=0),
                "avg_per_minute": round(statistics.fmean(full_minutes), 1) if full_minutes else 0,
                "writers_max_lag_behind_schedule_s": max_lag,
                "start_write_ms": {
                    "p50": ms_q(start_ms, 50),
                    "p95": ms_q(start_ms, 95),
                    "p99": ms_q(start_ms, 99),
                    "max": ms_q(start_ms, 100),
                },
                "finish_write_ms": {
                    "p50": ms_q(finish_ms, 50),
                    "p95": ms_q(finish_ms, 95),
                    "p99": ms_q(finish_ms, 99),
                    "max": ms_q(finish_ms, 100),
                },
                "all_writes_ms": {
                    "p50": ms_q(both_ms, 50),
                    "p95": ms_q(both_ms, 95),
                    "p99": ms_q(both_ms, 99),
                },
                "loadavg_per_minute": list(loads),
            },
        ),
        Check(
            name="history load: nothing dropped",
            done=done,
            checked="rows in JobHistory = attempts issued, SUCCESS and FAILED counts = the "
            "writers' own, no write swallowed by the recorder, no writer error",
            passed=complete
            and rows == issued
            and success == expected["SUCCESS"]
            and failed == expected["FAILED"]
            and swallowed == 0,
            figures={
                "attempts_issued": issued,
                "rows": rows,
                "runs": runs,
                "success": success,
                "failed": failed,
                "expected_success": expected["SUCCESS"],
                "expected_failed": expected["FAILED"],
                "writes_swallowed_by_recorder": swallowed,
                "writer_errors": [e[-2000:] for e in errors],
            },
        ),
        Check(
            name="history load: no PROCESSING left behind",
            done=done,
            checked="no row PROCESSING and none without endAt once every writer finished",
            passed=complete and processing == 0 and open_rows == 0,
            figures={
                "processing": processing,
                "without_end_at": open_rows,
                "processing_in_flight_max": max((s["processing"] for s in samples), default=0),
                "list_processing_ms": {
                    "p50": round(statistics.median([s["list_ms"] for s in samples]), 2)
                    if samples
                    else None,
                    "max": round(max((s["list_ms"] for s in samples), default=0), 2),
                },
                "flow_runs_with_history_ms_max": round(
                    max((s["lookup_ms"] for s in samples), default=0), 2
                ),
                "monitor_samples": len(samples),
            },
        ),
        Check(
            name="history load: (flowRunId, attempt) unique",
            done=done,
            checked="no (flowRunId, attempt) pair twice, none null",
            passed=complete and duplicates == 0 and unkeyed == 0,
            figures={"duplicated_pairs": duplicates, "rows_without_key": unkeyed},
        ),
    ]
    details = {
        "writers": [
            {k: v for k, v in r.items() if k not in ("start_ms", "finish_ms")} for r in reports
        ],
        "per_minute_including_partial": {str(k): v for k, v in per_minute.items()},
    }
    return checks, details


def ms_q(values: Sequence[float], q: float) -> float | None:
    """A percentile of millisecond values."""
    return round(harness.percentile(values, q), 2) if values else None


# =========================================================================================
# output and the run
# =========================================================================================


def _short(figures: dict[str, Any]) -> str:
    parts = []
    for key, value in figures.items():
        if isinstance(value, (int, float)) or value is None:
            parts.append(f"{key}={value}")
        if len(parts) == 6:
            break
    return ", ".join(parts)


def print_checks(console: Console, checks: Sequence[Check]) -> None:
    table = Table(title="Load checks", title_justify="left")
    table.add_column("check")
    table.add_column("result", justify="center")
    table.add_column("figures")
    for check in checks:
        result = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
        table.add_row(check.name, result, _short(check.figures))
    console.print(table)


def print_batches(console: Console, batches: Sequence[dict[str, Any]]) -> None:
    if not batches:
        return
    table = Table(title="Sync load: one batch a minute", title_justify="left")
    for column in ("minute", "changes", "converged s", "row p50 s", "dry run", "dry run s",
                   "server CPU s", "load 1/5/15", "watcher RSS MB"):  # fmt: skip
        table.add_column(column, justify="right")
    for b in batches:
        table.add_row(
            str(b["minute"] + 1),
            str(sum(b["changes"].values())),
            "NEVER" if b["converged_s"] is None else f"{b['converged_s']:.2f}",
            "—" if b["row_p50_s"] is None else f"{b['row_p50_s']:.2f}",
            "no-op" if b["dry_run_noop"] else str(b["dry_run_plan"]),
            f"{b['dry_run_s']:.1f}",
            f"{b['server_cpu_s']:.1f}",
            " / ".join(f"{v:.1f}" for v in b["loadavg"]),
            f"{b['watcher_rss_mb']:.0f}",
        )
    console.print(table)


def _failed(name: str, exc: BaseException) -> Check:
    return Check(
        name=f"{name}: ran to the end",
        done=f"the {name}",
        checked="no error stopped it",
        passed=False,
        figures={"error": "".join(traceback.format_exception(exc))[-3000:]},
    )


def run(
    minutes: int, rows: int, rate: int, writers: int, only: str | None, console: Console
) -> bool:
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    checks: list[Check] = []
    payload: dict[str, Any] = {}
    loads: dict[str, list[float]] = {"start": load_now()}
    with harness.sigterm_raises(), Databases() as databases:
        if only in (None, "history"):
            try:
                part, payload["history"] = run_history(databases, minutes, rate, writers, console)
                checks += part
            except Exception as exc:
                checks.append(_failed("history load", exc))
            loads["after_history"] = load_now()
        if only in (None, "sync"):
            try:
                part, payload["sync"] = run_sync(databases, rows, minutes, console)
                checks += part
            except Exception as exc:
                checks.append(_failed("sync load", exc))
            loads["after_sync"] = load_now()
    runtime_s = time.perf_counter() - started
    print_checks(console, checks)
    print_batches(console, payload.get("sync", {}).get("batches", []))
    path = harness.write_results(
        NAME,
        {
            "started_at": started_at.isoformat(),
            "runtime_s": round(runtime_s, 1),
            "config": {
                "minutes": minutes,
                "rows": rows,
                "attempts_per_minute": rate,
                "writers": writers,
                "only": only,
                "changed_fraction": CHANGED_FRACTION,
                "prefect_scheduler_service": "off",
            },
            "loadavg": loads,
            "checks": [check.as_json() for check in checks],
            **payload,
        },
    )
    console.print(f"runtime {runtime_s:.0f}s; results written to {path}")
    return all(check.passed for check in checks)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_bench", description=__doc__)
    parser.add_argument("--minutes", type=int, default=DEFAULT_MINUTES)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--attempts-per-minute", type=int, default=DEFAULT_RATE)
    parser.add_argument("--writers", type=int, default=DEFAULT_WRITERS)
    parser.add_argument("--only", choices=("sync", "history"), default=None)
    args = parser.parse_args(argv)
    if min(args.minutes, args.rows, args.attempts_per_minute, args.writers) < 1:
        parser.error("--minutes, --rows, --attempts-per-minute and --writers must be positive")
    console = Console() if sys.stdout.isatty() else Console(width=150)
    ok = run(args.minutes, args.rows, args.attempts_per_minute, args.writers, args.only, console)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
