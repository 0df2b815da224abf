"""Sync at scale: 100, 1,000 and 10,000 rows, each sync in a process of its own.

For each size N, rows of its own (``sync_bench.seed_rows``) in PostgreSQL tables and a work
pool of its own on one PostgreSQL-backed Prefect server, four syncs, each one
``python -m bench.sync_child`` (what ``jobctl sync`` does, its requests counted and its
peak RSS read from ``ru_maxrss``):

1. cold: every deployment created;
2. unchanged resync (full read of Prefect), median of ``RESYNC_REPEATS``: target ≤ 5 s
   and 0 writes at 10,000 rows;
3. 10 rows changed by plain SQL (``sync_bench.change_rows``: one valid change a row, in
   turn its param within its job's type, cron, priority, timeout, description), then a
   sync; 4. 100 other rows changed, then a sync: writes must equal the changes.

Every sync's plan is checked row by row (``sync_child`` lists the rows of each action):
the cold sync creates every row, a resync leaves every row unchanged, a changed sync
updates exactly the changed rows. Anything else (a rejected row, a pause) stops the run
with no figure.

Peak memory of every sync process: target under 300 MB. The growth table gives each cost
per row (reads) and per change (writes), so that a cost that grows faster than linearly
shows.

The server runs with its scheduler service off: with it on, 10,000 cron deployments make
it insert up to 100 runs each (a million flow runs) while the syncs are measured; the
sync deletes a deployment's future runs on every write, so with the scheduler off the
"changed" syncs do not pay for deleting the runs it would have inserted.
"""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prefect.settings import PREFECT_API_URL, temporary_settings
from rich.console import Console

from bench import harness, processes, report
from bench.harness import CpuMeter, Databases
from bench.report import Line
from bench.sync_bench import UnexpectedPlan, change_rows, group
from tests.fixtures.processes import base_env

NAME = "scale"
DEFAULT_ROWS = (100, 1000, 10_000)
QUICK_ROWS = (100, 1000)
CHANGES = (10, 100)
RESYNC_REPEATS = 3
UNCHANGED_TARGET_S = 5.0
PEAK_TARGET_MB = 300.0
CHILD_TIMEOUT_S = 4 * 3600.0  # a cold sync of 10,000 rows took over an hour at load 10-17
# A read that grows faster than this x the rows between two sizes is not linear.
LINEARITY_SLACK = 1.5
SERVER_ENV = {"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"}


@dataclass
class Child:
    """What one sync process reported."""

    seconds: float
    calls: int
    writes: int
    plan: dict[str, int]
    peak_rss_mb: float
    load: dict[str, float]
    raw: dict[str, Any] = field(default_factory=dict)


def sync_in_child(database_url: str, pool: str, api_url: str, what: str) -> Child:
    load = processes.load_note()
    done = subprocess.run(
        [sys.executable, "-m", "bench.sync_child", database_url, pool],
        env=base_env(PREFECT_API_URL=api_url),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what}: the sync process failed:\n{done.stderr[-3000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    if not data["ok"]:
        raise RuntimeError(f"{what}: the sync failed: {data['failures']}")
    return Child(
        data["seconds"],
        data["calls"],
        data["writes"],
        data["plan"],
        data["peak_rss_mb"],
        load,
        data,
    )


@dataclass
class Size:
    rows: int
    cold: Child
    unchanged: list[Child]
    changed: dict[int, Child]

    @property
    def resync(self) -> Child:
        return sorted(self.unchanged, key=lambda child: child.seconds)[len(self.unchanged) // 2]

    def children(self) -> list[Child]:
        return [self.cold, *self.unchanged, *self.changed.values()]

    def as_json(self) -> dict[str, Any]:
        def one(child: Child) -> dict[str, Any]:
            return {
                "seconds": child.seconds,
                "calls": child.calls,
                "writes": child.writes,
                "plan": child.plan,
                "peak_rss_mb": child.peak_rss_mb,
                "peak_rss_before_sync_mb": child.raw.get("peak_rss_before_sync_mb"),
                **child.load,
                "endpoints": child.raw.get("endpoints"),
                "changes": child.raw.get("changes"),
            }

        return {
            "rows": self.rows,
            "cold": one(self.cold),
            "unchanged": [one(child) for child in self.unchanged],
            "changed": {str(n): one(child) for n, child in self.changed.items()},
        }


def expect_plan(
    child: Child,
    what: str,
    rows: int,
    expected: Mapping[str, str],
    others: str,
    *,
    queues_may_change: bool = False,
) -> None:
    """Stop the bench unless the sync planned, row by row, what the scenario meant
    (``expected`` actions for those rows, ``others`` for the rest, nothing rejected)."""
    wanted = Counter(expected.values())
    wanted[others] += rows - len(expected)
    wrong: list[str] = []
    if child.plan != {action: n for action, n in wanted.items() if n}:
        wrong.append(f"planned {child.plan}, meant {dict(wanted)}")
    for action, ids in child.raw["rows_by_action"].items():
        wrong += [
            f"{schedule_id}: {action}, not {expected.get(schedule_id, others)}"
            for schedule_id in ids
            if expected.get(schedule_id, others) != action
        ]
    wrong += [f"{sid}: rejected ({reason})" for sid, reason in child.raw["rejected"].items()]
    if child.raw["queues_changed"] and not queues_may_change:
        wrong.append("the work queues changed")
    if wrong:
        raise UnexpectedPlan(
            f"{what}: not the plan the bench meant ({len(wrong)} unexpected); "
            "no figure is reported: " + " | ".join(wrong[:10])
        )


def bench_size(
    databases: Databases, template: str, meter: CpuMeter, api_url: str, rows: int, log: Console
) -> Size:
    with group(databases, template, f"scale{rows}", rows, seed=rows) as rowset:
        url = rowset.settings.database_url
        pool = rowset.settings.work_pool

        def child(
            what: str, others: str, expected: Mapping[str, str] | None = None, **kw: bool
        ) -> Child:
            meter.settle(server_wait_s=20, machine_wait_s=5)
            log.log(f"[bold]{rows} rows[/]: {what}")
            done = sync_in_child(url, pool, api_url, f"{rows} rows, {what}")
            expect_plan(done, f"{rows} rows, {what}", rows, expected or {}, others, **kw)
            return done

        cold = child("cold sync", "create", queues_may_change=True)
        unchanged = [child(f"unchanged resync {i + 1}", "unchanged") for i in range(RESYNC_REPEATS)]
        changed: dict[int, Child] = {}
        for offset, count in enumerate(CHANGES):
            step = max(1, rows // count)
            chosen = rowset.ids[offset::step][:count]  # fewer when the table is smaller
            kinds = change_rows(rowset.database, chosen, f"round {offset}", first_kind=offset)
            update = dict.fromkeys(kinds, "update")
            changed[len(chosen)] = child(f"{len(chosen)} rows changed", "unchanged", update)
            changed[len(chosen)].raw["changes"] = dict(Counter(kinds.values()))
    return Size(rows, cold, unchanged, changed)


def lines_of(sizes: list[Size]) -> list[Line]:
    lines: list[Line] = []
    for size in sizes:
        n = size.rows
        resync = size.resync
        is_10k = n >= 10_000
        lines += [
            Line(
                f"{n:,} rows: cold sync",
                size.cold.seconds,
                "s",
                note=f"{size.cold.writes:,} writes, {1000 * size.cold.seconds / n:.1f} ms/row",
            ),
            Line(
                f"{n:,} rows: unchanged resync (full read, median of {len(size.unchanged)})",
                resync.seconds,
                "s",
                f"≤ {UNCHANGED_TARGET_S:g} s, 0 writes" if is_10k else None,
                (
                    max(c.seconds for c in size.unchanged) <= UNCHANGED_TARGET_S
                    and resync.writes == 0
                )
                if is_10k
                else None,
                f"{resync.writes} writes, {resync.calls} calls, "
                f"{1000 * resync.seconds / n:.3f} ms/row",
            ),
        ]
        for count, child in size.changed.items():
            lines.append(
                Line(
                    f"{n:,} rows: {count} changed",
                    child.seconds,
                    "s",
                    f"writes = {count}",
                    child.writes == count,
                    f"{child.writes} writes, {child.calls} calls",
                )
            )
        peak = max(child.peak_rss_mb for child in size.children())
        lines.append(
            Line(
                f"{n:,} rows: peak RSS of a sync process",
                peak,
                "MB",
                f"< {PEAK_TARGET_MB:g} MB",
                peak < PEAK_TARGET_MB,
                f"cold {size.cold.peak_rss_mb:.0f}, resync {resync.peak_rss_mb:.0f}; "
                f"{processes.load_text(size.cold.load)} at the cold sync",
            )
        )
    for smaller, larger in itertools.pairwise(sizes):
        factor = larger.rows / smaller.rows
        growth = larger.resync.seconds / smaller.resync.seconds
        lines.append(
            Line(
                f"unchanged resync growth {smaller.rows:,} → {larger.rows:,} rows (x {factor:g})",
                growth,
                "x",
                f"≤ {factor * LINEARITY_SLACK:g} x (linear)",
                growth <= factor * LINEARITY_SLACK,
            )
        )
        cold_growth = larger.cold.seconds / smaller.cold.seconds
        lines.append(Line(f"cold sync growth {smaller.rows:,} → {larger.rows:,}", cold_growth, "x"))
    for size in sizes:
        small, large = sorted(size.changed)
        if small == large:
            continue
        extra = size.changed[large].seconds - size.changed[small].seconds
        lines.append(
            Line(
                f"{size.rows:,} rows: cost per extra change ({small} → {large} changes)",
                1000 * extra / (large - small),
                "ms/change",
            )
        )
    return lines


def run(sizes: list[int], console: Console) -> bool:
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    results: list[Size] = []
    with harness.sigterm_raises(), Databases() as databases:
        template = databases.create_migrated("template")
        with (
            harness.prefect_server(databases, **SERVER_ENV) as server,
            temporary_settings(updates={PREFECT_API_URL: server.api_url}),
        ):
            meter = CpuMeter(server)
            for rows in sizes:
                results.append(
                    bench_size(databases, template, meter, server.api_url, rows, console)
                )
                # Every finished size is kept, whatever happens to the next one.
                partial = write(results, sizes, started_at, started, final=False)
                console.log(f"{rows} rows done: {partial}")
    lines = lines_of(results)
    report.print_lines(
        console,
        "Sync at scale — each sync a process of its own (PostgreSQL tables and Prefect server, "
        "scheduler service off)",
        lines,
        caption="shared 2-core machine: load averages (1/5/15 min) in the note and the JSON",
    )
    path = write(results, sizes, started_at, started, final=True)
    console.print(f"results written to {path}")
    return not report.missed(lines)


def write(
    results: list[Size], sizes: list[int], started_at: datetime, started: float, *, final: bool
) -> str:
    """The results so far; a partial file replaces the one before it, the final one all."""
    lines = lines_of(results)
    path = harness.write_results(
        NAME if final else f"{NAME}-partial",
        {
            "started_at": started_at.isoformat(),
            "runtime_s": round(time.perf_counter() - started, 1),
            "complete": final,
            "config": {"rows": sizes, "changes": list(CHANGES), "server_env": SERVER_ENV},
            "sizes": [size.as_json() for size in results],
            "lines": [line.as_json() for line in lines],
            "unchanged_resync_s_per_row": {
                size.rows: statistics.median(c.seconds for c in size.unchanged) / size.rows
                for size in results
            },
            "targets_missed": report.missed(lines),
        },
    )
    for earlier in harness.RESULTS_DIR.glob(f"{NAME}-partial-*.json"):
        if earlier != path:
            earlier.unlink()
    return str(path)
