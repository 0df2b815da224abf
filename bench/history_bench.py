"""The history benchmark: what recording every attempt costs, and how a big JobHistory reads.

1. History overhead per attempt, against a real Prefect server (``harness.prefect_server``):
   the flow jobctl builds for ``processData`` (``flows.job_flows.build_flow`` with a
   ``HistoryRecorder`` on a PostgreSQL database) against a plain ``prefect.flow`` of the
   same signature calling the job directly. Both run in this process, interleaved
   a b b a …, N times each; mean and median seconds per run, the ratio a / b and the paired
   difference a - b (and this process's CPU per run). Measured twice: with Prefect's flow
   heartbeats off (they pad every run to about 1 s, see ``bench_flows``), then with them
   on as jobctl deploys them. Then the history writes alone: ``Repository.start_attempt``
   + ``finish_attempt`` per attempt, on PostgreSQL and on SQLite.
2. A large history on PostgreSQL: one ``INSERT … SELECT generate_series`` of 1,000,000
   rows (60 days, 20 job names, ~5 % FAILED), ``ANALYZE``, then through the repository
   "latest 50 attempts of a job" and "failures of the last 24 h" (median of 20 after
   3 warm-ups, target ≤ 20 ms each) with, for each, the same SQL alone through the driver,
   and the ``EXPLAIN (ANALYZE, BUFFERS)`` of the exact SQL and parameters it sent; then a
   purge of everything older than 30 days.

Run: ``.venv/bin/python -m bench.history_bench [--quick]``. Results go to
``bench/results/history-<UTC timestamp>.json``; the exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from prefect import Flow, flow
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    temporary_settings,
)
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, event, func, select, text

from bench import harness, history_surfaces
from bench.harness import CpuMeter, CpuSample, Databases, Settled
from bench.processes import load_note
from deployments.spec import HEARTBEAT_S
from flows.history import HistoryRecorder
from flows.job_flows import build_flow
from jobctl import migrate
from jobctl.db import create_db_engine
from jobctl.models import JobHistory, JobStatus
from jobctl.records import HistoryFilter
from jobctl.registry import SYSTEM_USER, get_job
from jobctl.repository import PURGE_BATCH_SIZE, Repository
from jobctl.settings import Settings
from jobs import examples
from tests.fixtures.prefect_server import PrefectServer

NAME = "history"
MODULE = "bench.history_bench"  # the flows' module, also when run as ``-m`` (``__main__``)

JOB_NAME = "processData"
JOB_PARAM = ["alpha", "beta", "gamma"]
PLAIN_FLOW_NAME = "processDataPlain"

QUERY_TARGET_MS = 20.0
HISTORY_DAYS = 60
PURGE_DAYS = 30
FAILED_FRACTION = 0.05
# 20 job names; the rows cycle through them, so each has 1/20 of the history.
JOB_NAMES = ("processData", "httpCall", "sleep", "fail", *(f"etl_{i:02d}" for i in range(1, 17)))
QUERIED_JOB = "processData"
FILL_SEED = 0.42
BOOTSTRAP_RESAMPLES = 5_000
DRAIN_TIMEOUT_S = 10.0

T = TypeVar("T")


@dataclass(frozen=True)
class Config:
    flow_runs: int
    write_attempts: int
    history_rows: int
    flow_warmups: int = 2
    write_warmups: int = 20
    query_repeats: int = 20
    query_warmups: int = 3


FULL = Config(flow_runs=30, write_attempts=1_000, history_rows=1_000_000)
QUICK = Config(flow_runs=10, write_attempts=200, history_rows=100_000)


@dataclass
class Measure:
    """One line of the results table."""

    section: str
    measure: str
    value: float
    unit: str
    target: str | None = None
    met: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """The SQL a repository call sent, with its parameters, and its EXPLAIN (ANALYZE, BUFFERS)."""

    query: str
    sql: str
    parameters: dict[str, str]
    literal_sql: str
    plan: list[str]
    indexes: list[str]
    note: str | None = None


# -- statistics ------------------------------------------------------------------------------


def bootstrap_mean_ci(values: Sequence[float], *, seed: int = 1) -> tuple[float, float]:
    """A 95 % bootstrap interval of the mean of ``values`` (percentile method)."""
    rng = random.Random(seed)
    means = sorted(
        statistics.fmean(rng.choices(values, k=len(values))) for _ in range(BOOTSTRAP_RESAMPLES)
    )
    return means[int(0.025 * BOOTSTRAP_RESAMPLES)], means[int(0.975 * BOOTSTRAP_RESAMPLES) - 1]


def summary_s(samples: Sequence[float]) -> dict[str, Any]:
    return {
        "mean_s": round(statistics.fmean(samples), 6),
        "median_s": round(statistics.median(samples), 6),
        "stdev_s": round(statistics.stdev(samples), 6) if len(samples) > 1 else 0.0,
        "min_s": round(min(samples), 6),
        "max_s": round(max(samples), 6),
        "p95_s": round(harness.percentile(samples, 95), 6),
        "samples_s": [round(sample, 6) for sample in samples],
    }


def timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    value = call()
    return value, time.perf_counter() - started


def wall_and_cpu(call: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds of this process (all its threads) spent by ``call``."""
    cpu_started = time.process_time()
    started = time.perf_counter()
    call()
    return time.perf_counter() - started, time.process_time() - cpu_started


# -- 1. history overhead per flow run ------------------------------------------------------


def plain_flow() -> Flow[..., Any]:
    """The baseline: the same job, the same parameters, no history and no hooks."""

    @flow(name=PLAIN_FLOW_NAME)
    def process_data_plain(param: list[str] | None, user: str = SYSTEM_USER) -> dict[str, Any]:
        """processData called directly."""
        return examples.process_data(param, user)

    return process_data_plain


@dataclass
class FlowSeries:
    """One interleaved series: the seconds of each run of (a) and (b), and the CPU meanwhile."""

    heartbeat_s: int | None
    ours_s: list[float]
    plain_s: list[float]
    # CPU seconds of this process during each run (every thread: the engine's, the log and
    # event workers'); much less sensitive than wall time to other programs' load.
    ours_cpu_s: list[float]
    plain_cpu_s: list[float]
    cpu: CpuSample
    settled: Settled

    @property
    def label(self) -> str:
        if self.heartbeat_s is None:
            return "Prefect flow heartbeats off"
        return f"Prefect flow heartbeats every {self.heartbeat_s} s, as jobctl deploys"

    def measures(self, section: str) -> list[Measure]:
        differences_ms = self.differences_ms()
        low_ms, high_ms = bootstrap_mean_ci(differences_ms)
        mean_ours, mean_plain = statistics.fmean(self.ours_s), statistics.fmean(self.plain_s)
        median_ours = statistics.median(self.ours_s)
        median_plain = statistics.median(self.plain_s)
        return [
            Measure(section, "(a) jobctl flow (history) - mean", mean_ours, "s/run"),
            Measure(section, "(a) jobctl flow (history) - median", median_ours, "s/run"),
            Measure(section, "(b) plain prefect.flow - mean", mean_plain, "s/run"),
            Measure(section, "(b) plain prefect.flow - median", median_plain, "s/run"),
            Measure(section, "ratio a / b (means)", mean_ours / mean_plain, "x"),
            Measure(section, "ratio a / b (medians)", median_ours / median_plain, "x"),
            Measure(
                section,
                f"a - b per run, paired mean (95 % CI {low_ms:.1f} … {high_ms:.1f})",
                statistics.fmean(differences_ms),
                "ms",
                details={
                    "ci95_ms": [round(low_ms, 3), round(high_ms, 3)],
                    "median_of_pairs_ms": round(statistics.median(differences_ms), 3),
                },
            ),
            Measure(
                section,
                "a - b client CPU per run, paired median",
                statistics.median(self.cpu_differences_ms()),
                "ms",
            ),
        ]

    def differences_ms(self) -> list[float]:
        return [1000 * (a - b) for a, b in zip(self.ours_s, self.plain_s, strict=True)]

    def cpu_differences_ms(self) -> list[float]:
        return [1000 * (a - b) for a, b in zip(self.ours_cpu_s, self.plain_cpu_s, strict=True)]

    def as_json(self) -> dict[str, Any]:
        return {
            "heartbeat_frequency_s": self.heartbeat_s,
            "jobctl_flow": summary_s(self.ours_s),
            "plain_flow": summary_s(self.plain_s),
            "paired_differences_ms": [round(d, 3) for d in self.differences_ms()],
            "jobctl_flow_client_cpu": summary_s(self.ours_cpu_s),
            "plain_flow_client_cpu": summary_s(self.plain_cpu_s),
            "waited_for_idle_s": round(self.settled.waited_s, 2),
            "machine_quiet_before": self.settled.machine_quiet,
            "other_programs_cpus": round(self.cpu.others_cores(), 2),
            "cpu": self.cpu.as_json(),
        }


def flow_series(
    run_ours: Callable[[], None],
    run_plain: Callable[[], None],
    runs: int,
    heartbeat_s: int | None,
    meter: CpuMeter,
) -> FlowSeries:
    """``runs`` runs of each flow, a b, b a, a b …; the server idle before the first."""
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: heartbeat_s}):
        settled = meter.settle()
        ours: list[tuple[float, float]] = []
        plain: list[tuple[float, float]] = []
        before = meter.sample()
        for index in range(runs):
            if index % 2 == 0:
                ours.append(wall_and_cpu(run_ours))
                plain.append(wall_and_cpu(run_plain))
            else:
                plain.append(wall_and_cpu(run_plain))
                ours.append(wall_and_cpu(run_ours))
        cpu = meter.sample() - before
    return FlowSeries(
        heartbeat_s,
        ours_s=[wall for wall, _ in ours],
        plain_s=[wall for wall, _ in plain],
        ours_cpu_s=[cpu_s for _, cpu_s in ours],
        plain_cpu_s=[cpu_s for _, cpu_s in plain],
        cpu=cpu,
        settled=settled,
    )


def bench_flows(
    server: PrefectServer, database: str, config: Config, console: Console
) -> tuple[list[Measure], dict[str, Any]]:
    """(a) the flow jobctl builds against (b) a plain flow, both in this process.

    Prefect 3.9's sync engine joins its heartbeat thread when a run ends, and that thread
    sleeps in steps of 1 s: with heartbeats on, every run lasts about 1 s whatever it does,
    which hides a cost of a few milliseconds. So the overhead is measured with heartbeats
    off, then the same series again with heartbeats as jobctl's deployments set them.
    """
    url = harness.psycopg_url(database)
    recorder = HistoryRecorder(lambda: Settings(database_url=url))
    ours = build_flow(get_job(JOB_NAME), policy=None, module=MODULE, recorder=recorder)
    plain = plain_flow()
    expected = examples.process_data(JOB_PARAM, SYSTEM_USER)
    meter = CpuMeter(server)

    def run_ours() -> None:
        if ours(param=JOB_PARAM) != expected:
            raise RuntimeError("the jobctl flow returned something else")

    def run_plain() -> None:
        if plain(param=JOB_PARAM) != expected:
            raise RuntimeError("the plain flow returned something else")

    try:
        console.log(f"flows: {config.flow_warmups} warm-up runs of each (not measured)")
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            for _ in range(config.flow_warmups):
                run_ours()
                run_plain()
        series: list[FlowSeries] = []
        for heartbeat_s in (None, HEARTBEAT_S):
            console.log(
                f"flows: {config.flow_runs} runs of each, a b b a …, heartbeats "
                f"{'off' if heartbeat_s is None else f'every {heartbeat_s} s'}"
            )
            series.append(flow_series(run_ours, run_plain, config.flow_runs, heartbeat_s, meter))
        history_check = check_flow_history(
            recorder.repository, config.flow_warmups + len(series) * config.flow_runs
        )
    finally:
        recorder.repository.engine.dispose()

    measures: list[Measure] = []
    for one in series:
        section = f"1. history overhead per flow run (N={config.flow_runs}; {one.label})"
        measures += one.measures(section)
    details = {
        "order": "a b, then b a, alternating; warm-up runs excluded",
        "series": [one.as_json() for one in series],
        "history_rows_written": history_check,
    }
    return measures, details


def check_flow_history(repository: Repository, runs: int) -> dict[str, Any]:
    """The recorder swallows write errors: make sure every run really left its row."""
    with repository.session() as session:
        by_status: dict[JobStatus, int] = {
            status: count
            for status, count in session.execute(
                select(JobHistory.status, func.count()).group_by(JobHistory.status)
            ).tuples()
        }
        unfinished = session.scalar(
            select(func.count()).select_from(JobHistory).where(JobHistory.endAt.is_(None))
        )
    counts = {status.value: count for status, count in by_status.items()}
    if counts != {JobStatus.SUCCESS.value: runs} or unfinished:
        raise RuntimeError(
            f"expected {runs} finished SUCCESS rows from the jobctl flow, found {counts} "
            f"({unfinished} without endAt): the history writes failed"
        )
    return {"rows": runs, "statuses": counts}


# -- 1b. the history writes alone ---------------------------------------------------------


def write_attempt(repository: Repository) -> tuple[float, float]:
    """One attempt, started then finished as the flow body does it; seconds of each."""
    run_id = str(uuid.uuid4())
    common: dict[str, Any] = {
        "flow_run_id": run_id,
        "attempt": 1,
        "job_name": JOB_NAME,
        "param": JOB_PARAM,
        "schedule_id": None,
    }
    _, start_s = timed(lambda: repository.start_attempt(**common))
    _, finish_s = timed(
        lambda: repository.finish_attempt(
            **common, status=JobStatus.SUCCESS, peak_memory_bytes=100_000_000
        )
    )
    return start_s, finish_s


def bench_writes(backend: str, url: str, config: Config, console: Console) -> Measure:
    engine = create_db_engine(url)
    try:
        migrate.upgrade(engine)
        repository = Repository(engine)
        for _ in range(config.write_warmups):
            write_attempt(repository)
        console.log(f"writes: {config.write_attempts} attempts on {backend}")
        started = time.perf_counter()
        samples = [write_attempt(repository) for _ in range(config.write_attempts)]
        total_s = time.perf_counter() - started
        rows = repository.count_history()
    finally:
        engine.dispose()
    if rows != config.write_attempts + config.write_warmups:
        raise RuntimeError(f"{backend}: {rows} history rows after the writes")
    per_attempt_ms = [1000 * (start + finish) for start, finish in samples]
    return Measure(
        f"1b. history writes alone ({config.write_attempts:,} attempts)",
        f"start_attempt + finish_attempt, {backend}",
        1000 * total_s / config.write_attempts,
        "ms/attempt",
        details={
            "total_s": round(total_s, 3),
            "median_ms": round(statistics.median(per_attempt_ms), 3),
            "p95_ms": round(harness.percentile(per_attempt_ms, 95), 3),
            "start_attempt_median_ms": round(1000 * statistics.median(s for s, _ in samples), 3),
            "finish_attempt_median_ms": round(1000 * statistics.median(f for _, f in samples), 3),
            **load_note(),
        },
    )


# -- 2. a large history on PostgreSQL -----------------------------------------------------

# Rows in id order go forward in time (as real history does), one slot of 60 days / rows
# each with a random offset inside it; job names cycle; ~5 % FAILED; one run per row.
# Each param fits its job's type as a run of it would have it (``jobs/examples.py``:
# processData a list of text, httpCall an object with a url, sleep seconds, fail a message);
# the etl_* names stand for the jobs of a larger installation, with processData's shape.
FILL_SQL = """
INSERT INTO "JobHistory" (
    "jobName", param, status, error, "startAt", "endAt",
    "scheduleId", "flowRunId", attempt, "peakMemoryBytes"
)
SELECT
    (CAST(:job_names AS text[]))[1 + s.job],
    CASE (CAST(:job_names AS text[]))[1 + s.job]
        WHEN 'httpCall' THEN jsonb_build_object('url', 'https://example.invalid/hook/' || s.n)
        WHEN 'sleep' THEN to_jsonb(round(CAST(0.1 + mod(s.n, 190) / 100.0 AS numeric), 2))
        WHEN 'fail' THEN to_jsonb('failed on purpose ' || s.n)
        ELSE jsonb_build_array('item-' || s.n, 'alpha')
    END,
    s.status,
    CASE WHEN s.status = 'FAILED' THEN 'DemoFailure: failed on purpose' END,
    s.start_at,
    s.start_at + make_interval(secs => s.duration_s),
    'bench-schedule-' || s.job,
    gen_random_uuid()::text,
    1,
    50000000 + s.job * 1000000
FROM (
    SELECT
        n,
        mod(n, :job_count) AS job,
        CAST(:oldest AS timestamptz) + make_interval(secs => (n - 1 + random()) * :step_s)
            AS start_at,
        CAST(CASE WHEN random() < :failed THEN 'FAILED' ELSE 'SUCCESS' END AS "JobStatus")
            AS status,
        0.05 + random() * 30 AS duration_s
    FROM generate_series(1, :rows) AS n
) AS s
"""


def fill_history(engine: Engine, rows: int, now: datetime) -> float:
    oldest = now - timedelta(days=HISTORY_DAYS)
    step_s = (now - oldest).total_seconds() / rows
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("SELECT setseed(:seed)"), {"seed": FILL_SEED})
        conn.execute(
            text(FILL_SQL),
            {
                "job_names": list(JOB_NAMES),
                "job_count": len(JOB_NAMES),
                "oldest": oldest,
                "step_s": step_s,
                "failed": FAILED_FRACTION,
                "rows": rows,
            },
        )
    with engine.begin() as conn:
        conn.execute(text('ANALYZE "JobHistory"'))
    return time.perf_counter() - started


def count_where(engine: Engine, *conditions: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(select(func.count()).select_from(JobHistory).where(*conditions)) or 0
        )


@contextlib.contextmanager
def captured_sql(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the engine sends (its driver SQL and parameters) meanwhile."""
    seen: list[tuple[str, Any]] = []

    def listener(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def the_select(engine: Engine, what: str, call: Callable[[], object]) -> tuple[str, Any]:
    """The one SELECT (driver SQL and parameters) that ``call`` sends."""
    with captured_sql(engine) as seen:
        call()
    selects = [(sql, params) for sql, params in seen if sql.lstrip().upper().startswith("SELECT")]
    if len(selects) != 1:
        raise RuntimeError(f"{what}: expected one SELECT, the repository sent {len(selects)}")
    return selects[0]


INDEX_IN_PLAN = re.compile(
    r"(?:Index(?: Only)? Scan(?: Backward)?|Bitmap Index Scan) (?:using|on) \"?(\w+)\"?"
)
EXECUTION_TIME = re.compile(r"^Execution Time: ([\d.]+) ms")


def explain(engine: Engine, what: str, statement: str, parameters: Any) -> Plan:
    """EXPLAIN (ANALYZE, BUFFERS) of a statement exactly as the repository sent it.

    The same SQL and parameters through the same driver (server-side binding, as the
    repository's execution), so the plan is the one the query gets.
    """
    with engine.connect() as conn:
        plan = list(
            conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).scalars()
        )
        driver_connection = conn.connection.driver_connection
        assert isinstance(driver_connection, psycopg.Connection)
        literal = psycopg.ClientCursor(driver_connection).mogrify(statement, parameters)
        conn.rollback()
    indexes = sorted({match.group(1) for line in plan for match in INDEX_IN_PLAN.finditer(line)})
    return Plan(
        query=what,
        sql=statement,
        parameters={key: repr(value) for key, value in dict(parameters).items()},
        literal_sql=literal,
        plan=plan,
        indexes=indexes,
    )


def execution_ms(plan: Plan) -> float:
    for line in plan.plan:
        if match := EXECUTION_TIME.match(line):
            return float(match.group(1))
    raise RuntimeError(f"no execution time in the plan of {plan.query}")


def repeat_timed(call: Callable[[], T], config: Config) -> tuple[list[float], T, int]:
    """Time ``query_repeats`` calls after ``query_warmups`` untimed ones.

    Returns the seconds of each, the last value, and how many full (generation 2) garbage
    collections ran during the timed calls.
    """
    value = call()
    for _ in range(config.query_warmups - 1):
        value = call()
    full_collections = gc.get_stats()[2]["collections"]
    samples: list[float] = []
    for _ in range(config.query_repeats):
        value, seconds = timed(call)
        samples.append(seconds)
    return samples, value, gc.get_stats()[2]["collections"] - full_collections


def prepared_statements(engine: Engine) -> list[dict[str, Any]]:
    """The statements psycopg prepared on the pool's connection, and how they were planned.

    psycopg prepares a statement at its 5th execution on a connection; PostgreSQL may then
    switch to a generic plan, which an EXPLAIN with parameters would not show. (psycopg
    forgets them at the next ROLLBACK: call this right after the calls to look at.)
    """
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT name, substring(statement from 'WHERE .*'), generic_plans, custom_plans "
            "FROM pg_prepared_statements ORDER BY name"
        ).all()
    return [
        {"name": name, "where": where, "generic_plans": generic, "custom_plans": custom}
        for name, where, generic, custom in rows
    ]


@dataclass
class QueryTiming:
    """One history query: through the repository, its SQL alone through the driver, its plan."""

    name: str
    repository_s: list[float]
    driver_s: list[float]
    rows: int
    plan: Plan
    full_collections: int
    prepared: list[dict[str, Any]]

    def measures(self, section: str) -> list[Measure]:
        median_ms = 1000 * statistics.median(self.repository_s)
        index = ", ".join(self.plan.indexes) or "no index"
        return [
            Measure(
                section,
                f"{self.name}: list_history ({self.rows:,} rows; {index})",
                median_ms,
                "ms",
                f"≤ {QUERY_TARGET_MS:g} ms",
                median_ms <= QUERY_TARGET_MS,
                details={
                    **summary_s(self.repository_s),
                    "rows_returned": self.rows,
                    "indexes": self.plan.indexes,
                    "full_gc_collections_while_timed": self.full_collections,
                    "prepared_statements": self.prepared,
                },
            ),
            Measure(
                section,
                "    its SQL alone through the driver (fetchall, no ORM)",
                1000 * statistics.median(self.driver_s),
                "ms",
                details=summary_s(self.driver_s),
            ),
            Measure(
                section,
                "    its execution in PostgreSQL (EXPLAIN ANALYZE)",
                execution_ms(self.plan),
                "ms",
            ),
        ]


def time_history_query(
    engine: Engine, repository: Repository, name: str, query: HistoryFilter, config: Config
) -> QueryTiming:
    repository_s, attempts, full_collections = repeat_timed(
        lambda: repository.list_history(query), config
    )
    prepared = prepared_statements(engine)
    statement, parameters = the_select(engine, name, lambda: repository.list_history(query))

    def through_driver() -> int:
        # A transaction that commits, as the repository's session does (a ROLLBACK would
        # make psycopg drop its prepared statements, so only this path would re-parse).
        with engine.begin() as conn:
            return len(conn.exec_driver_sql(statement, parameters).fetchall())

    driver_s, driver_rows, _ = repeat_timed(through_driver, config)
    if driver_rows != len(attempts):
        raise RuntimeError(f"{name}: {driver_rows} rows through the driver, {len(attempts)} not")
    plan = explain(engine, name, statement, parameters)
    if prepared:
        plan.note = "; ".join(
            f"psycopg prepared it ({one['name']}) during the timed calls: PostgreSQL planned "
            f"it for its parameters {one['custom_plans']} times, generically "
            f"{one['generic_plans']} times"
            for one in prepared
        )
    return QueryTiming(
        name, repository_s, driver_s, len(attempts), plan, full_collections, prepared
    )


def bench_large_history(
    database: str, config: Config, console: Console
) -> tuple[list[Measure], list[Plan], dict[str, Any]]:
    rows = config.history_rows
    section = (
        f"2. PostgreSQL history of {rows:,} rows "
        f"(median of {config.query_repeats} after {config.query_warmups} warm-ups)"
    )
    engine = create_db_engine(harness.psycopg_url(database))
    try:
        repository = Repository(engine)
        console.log(f"history: filling {rows:,} rows with one INSERT … SELECT, then ANALYZE")
        fill_s = fill_history(engine, rows, datetime.now(UTC))
        total = repository.count_history()
        if total != rows:
            raise RuntimeError(f"the fill wrote {total} rows, not {rows}")

        since = datetime.now(UTC) - timedelta(hours=24)
        latest = HistoryFilter(job_name=QUERIED_JOB, limit=50)
        failures = HistoryFilter(status=JobStatus.FAILED, since=since, limit=1000)
        failed_last_24h = count_where(
            engine, JobHistory.status == JobStatus.FAILED, JobHistory.startAt >= since
        )
        console.log("history: timing the two queries through the repository")
        queries = [
            time_history_query(
                engine, repository, f"latest 50 attempts of {QUERIED_JOB!r}", latest, config
            ),
            time_history_query(
                engine, repository, "FAILED in the last 24 h (limit 1000)", failures, config
            ),
        ]
        if queries[0].rows != 50 or queries[1].rows != min(failed_last_24h, 1000):
            raise RuntimeError(
                f"the queries returned {queries[0].rows} and {queries[1].rows} rows, "
                f"expected 50 and {min(failed_last_24h, 1000)}"
            )

        console.log("history: the same queries through `jobctl history` and `jobctl api`")
        surfaces = history_surfaces.cli_timings(harness.psycopg_url(database))
        with tempfile.TemporaryDirectory(prefix="jobctl-bench-api-") as directory:
            surfaces |= history_surfaces.api_timings(harness.psycopg_url(database), Path(directory))
        surfaces_load = load_note()

        cutoff = datetime.now(UTC) - timedelta(days=PURGE_DAYS)
        expected_purge = count_where(engine, JobHistory.startAt < cutoff)
        console.log(f"history: purging {expected_purge:,} rows older than {PURGE_DAYS} days")
        load_before_purge = load_note()
        purged, purge_s = timed(lambda: repository.purge_history(cutoff))
        remaining = repository.count_history()
        left_old = count_where(engine, JobHistory.startAt < cutoff)
    finally:
        engine.dispose()
    if purged != expected_purge or left_old or remaining != rows - purged:
        raise RuntimeError(
            f"the purge deleted {purged} rows, expected {expected_purge}; "
            f"{left_old} old rows left, {remaining} rows in all"
        )

    measures = [Measure(section, "fill: INSERT … SELECT generate_series + ANALYZE", fill_s, "s")]
    for query in queries:
        measures += query.measures(section)
    for what, samples in surfaces.items():
        measures.append(
            Measure(
                section,
                f"{what} (median of {len(samples)})",
                history_surfaces.median_ms(samples),
                "ms",
                details={**summary_s(samples), **surfaces_load},
            )
        )
    measures += [
        Measure(section, f"purge older than {PURGE_DAYS} days: rows deleted", purged, "rows"),
        Measure(
            section,
            f"purge older than {PURGE_DAYS} days: time",
            purge_s,
            "s",
            details={"rows_per_s": round(purged / purge_s) if purge_s else None},
        ),
    ]
    details = {
        "rows": rows,
        "days": HISTORY_DAYS,
        "job_names": list(JOB_NAMES),
        "queried_job": QUERIED_JOB,
        "failed_in_last_24h": failed_last_24h,
        "purge": {
            "cutoff": cutoff.isoformat(),
            "deleted": purged,
            "seconds": round(purge_s, 3),
            "rows_left": remaining,
            "batch_size": PURGE_BATCH_SIZE,
            **load_before_purge,
        },
        **load_note(),
    }
    return measures, [query.plan for query in queries], details


# -- output --------------------------------------------------------------------------------


def format_value(value: float, unit: str) -> str:
    if unit == "rows":
        return f"{int(value):,}"
    if unit == "x":
        return f"{value:.3f}"
    if unit in ("s", "s/run"):
        return f"{value:.4f}" if value < 10 else f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"


def print_measures(console: Console, title: str, measures: Sequence[Measure]) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("target")
    table.add_column("met?", justify="center")
    section: str | None = None
    for measure in measures:
        if measure.section != section:
            if section is not None:
                table.add_section()
            table.add_row(f"[bold]{measure.section}[/]", "", "", "", "")
            section = measure.section
        met = "—" if measure.met is None else ("[green]yes[/]" if measure.met else "[red]NO[/]")
        table.add_row(
            "  " + measure.measure,
            format_value(measure.value, measure.unit),
            measure.unit,
            measure.target or "—",
            met,
        )
    console.print(table)


def print_plans(console: Console, plans: Sequence[Plan]) -> None:
    for plan in plans:
        console.rule(f"EXPLAIN (ANALYZE, BUFFERS): {plan.query}", align="left")
        console.print(plan.literal_sql, markup=False, highlight=False)
        console.print()
        for line in plan.plan:
            console.print(line, markup=False, highlight=False)
        if plan.note:
            console.print(f"({plan.note})", markup=False, highlight=False)


# -- the run -------------------------------------------------------------------------------


def run(quick: bool, console: Console | None = None) -> dict[str, Any]:
    """Run every measure, print the tables and plans, write the JSON; return the results.

    The returned dict is the JSON document's payload plus ``results_path`` and
    ``all_met`` (False when a target was missed).
    """
    console = console or (Console() if sys.stdout.isatty() else Console(width=150))
    config = QUICK if quick else FULL
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    measures: list[Measure] = []
    with harness.sigterm_raises(), Databases() as databases:
        flows_db = databases.create_migrated("flows")
        console.log("starting a Prefect server on PostgreSQL")
        with harness.prefect_server(databases) as server:
            console.log(f"Prefect server healthy after {server.start_s:.1f}s at {server.api_url}")
            server_start_s = server.start_s
            with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                try:
                    flow_measures, flow_details = bench_flows(server, flows_db, config, console)
                finally:
                    # Ship the runs' last logs and events while the server is still up.
                    APILogWorker.drain_all(timeout=DRAIN_TIMEOUT_S)
                    EventsWorker.drain_all(timeout=DRAIN_TIMEOUT_S)
        measures += flow_measures

        # The rest needs no Prefect server: it is stopped, so it takes no CPU meanwhile.
        writes_db = databases.create("writes")
        measures.append(bench_writes("PostgreSQL", harness.psycopg_url(writes_db), config, console))
        with tempfile.TemporaryDirectory(prefix="jobctl-bench-history-") as directory:
            sqlite_url = f"sqlite:///{Path(directory) / 'history.db'}"
            measures.append(bench_writes("SQLite", sqlite_url, config, console))

        history_db = databases.create_migrated("history")
        history_measures, plans, history_details = bench_large_history(history_db, config, console)
        measures += history_measures
    runtime_s = time.perf_counter() - started

    print_measures(console, f"history benchmark{' (quick)' if quick else ''}", measures)
    print_plans(console, plans)
    missed = [m for m in measures if m.met is False]
    payload: dict[str, Any] = {
        "started_at": started_at.isoformat(),
        "runtime_s": round(runtime_s, 1),
        "quick": quick,
        "prefect_server_start_s": round(server_start_s, 1),
        "config": asdict(config),
        "measures": [asdict(measure) for measure in measures],
        "flows": flow_details,
        "large_history": history_details,
        "plans": [asdict(plan) for plan in plans],
        "targets_missed": [m.measure for m in missed],
    }
    path = harness.write_results(NAME, payload)
    console.print(f"runtime {runtime_s:.0f}s; results written to {path}")
    for measure in missed:
        console.print(f"[red]target missed[/]: {measure.measure}")
    return {**payload, "results_path": str(path), "all_met": not missed}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.history_bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {QUICK.flow_runs} flow runs, {QUICK.write_attempts} writes, "
        f"{QUICK.history_rows:,} history rows",
    )
    args = parser.parse_args(argv)
    results = run(args.quick)
    return 0 if results["all_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
