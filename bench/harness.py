"""What every benchmark needs: throwaway databases, a Prefect server, request counting, output.

Child processes and the Prefect server are the tests' own (``tests/fixtures``): a
``prefect server start`` child in its own process group, here on a PostgreSQL database of
its own, reaped with SIGINT then SIGKILL of the whole group.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import prefect
import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from jobctl import db, migrate, processes
from tests.fixtures.prefect_server import PrefectServer

PG_ADMIN_DSN = os.environ.get(
    "JOBCTL_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DATABASE_PREFIX = "jobctl_bench_"
RESULTS_DIR = Path(__file__).parent / "results"
PREFECT_BIN = Path(sys.executable).with_name("prefect")

# -- child processes: the tests' own (tests/fixtures), one implementation for both ---------


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit`` so that every ``finally`` (cleanup) still runs."""

    def handler(signum: int, frame: types.FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- throwaway databases -----------------------------------------------------------------


def psycopg_url(database: str) -> str:
    """The SQLAlchemy URL jobctl expects for ``database`` on the bench server."""
    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_DSN)
    user = info.get("user", "postgres")
    host = info.get("host", "127.0.0.1")
    port = info.get("port", 5432)
    return f"postgresql+psycopg://{user}@{host}:{port}/{database}"


def asyncpg_url(database: str) -> str:
    return psycopg_url(database).replace("postgresql+psycopg://", "postgresql+asyncpg://", 1)


def libpq_dsn(database: str) -> str:
    return psycopg.conninfo.make_conninfo(PG_ADMIN_DSN, dbname=database)


class Databases:
    """Creates ``jobctl_bench_<pid>_*`` databases and drops every one of them on exit.

    The pid in the name lets a later run drop what a killed run left behind, without
    touching the databases of a bench that is still running.
    """

    def __init__(self) -> None:
        self.prefix = f"{DATABASE_PREFIX}{os.getpid()}_"
        self.created: list[str] = []

    def __enter__(self) -> Databases:
        self.drop_leftovers()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.drop_all()

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5)

    def create(self, purpose: str, *, template: str = "template0") -> str:
        name = f"{self.prefix}{purpose}_{uuid.uuid4().hex[:8]}"
        with self._admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        self.created.append(name)
        return name

    def create_migrated(self, purpose: str) -> str:
        """A database holding the jobctl tables at the head revision."""
        name = self.create(purpose)
        engine = db.create_db_engine(psycopg_url(name))
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()  # a template must have no open connection to be cloned
        return name

    def drop(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        errors: list[str] = []
        for name in reversed(list(self.created)):
            try:
                self.drop(name)
            except psycopg.Error as exc:
                errors.append(f"{name}: {exc}")
        if errors:
            print("could not drop: " + "; ".join(errors), file=sys.stderr)

    def drop_leftovers(self) -> None:
        """Drop ``jobctl_bench_<pid>_*`` databases whose process is gone."""
        pattern = re.compile(rf"^{DATABASE_PREFIX}(\d+)_")
        with self._admin() as conn:
            names = [
                row[0]
                for row in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s",
                    (f"{DATABASE_PREFIX}%",),
                )
            ]
        for name in names:
            match = pattern.match(name)
            if match and not processes.exists(int(match.group(1))):
                self.drop(name)


# -- the Prefect server --------------------------------------------------------------------


@contextlib.contextmanager
def prefect_server(databases: Databases, **server_env: object) -> Iterator[PrefectServer]:
    """``prefect server start`` on a PostgreSQL database of its own and a free port, with
    Prefect's default settings but for ``server_env`` (and no UI).

    The server's process group is stopped and its home directory removed on exit,
    whatever happened.
    """
    database = databases.create("prefect")
    home = Path(tempfile.mkdtemp(prefix="jobctl-bench-prefect-"))
    env = {
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": asyncpg_url(database),
        **{key: str(value) for key, value in server_env.items()},
    }
    server = PrefectServer(home, database=database, env=env)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
        databases.drop(database)


# -- CPU accounting ------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Other programs using more CPUs than this, on average, make a measurement "contended".
QUIET_MACHINE_CORES = 0.5


def _proc_stat(pid: str) -> tuple[int, int, float] | None:
    """(process group, start time in ticks, utime + stime in seconds) of one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[2]), int(fields[19]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _proc_cmdline(pid: str) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot (``/proc/stat``, all CPUs)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/stat").read_text().splitlines()[0].split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, first[1:9])
        return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS
    return 0.0


@dataclass(frozen=True)
class CpuSample:
    server_s: float  # the Prefect server's process group
    postgres_s: float  # the PostgreSQL backends serving the server's database
    client_s: float  # this process
    machine_s: float  # every CPU of the machine, busy time (other sessions' load included)
    at: float

    def __sub__(self, other: CpuSample) -> CpuSample:
        return CpuSample(
            self.server_s - other.server_s,
            self.postgres_s - other.postgres_s,
            self.client_s - other.client_s,
            self.machine_s - other.machine_s,
            self.at - other.at,
        )

    def others_cores(self) -> float:
        """CPUs used on average by every other process of the machine (a difference)."""
        others = self.machine_s - self.server_s - self.postgres_s - self.client_s
        return max(0.0, others) / self.at if self.at > 0 else 0.0

    def as_json(self) -> dict[str, float]:
        others = self.machine_s - self.server_s - self.postgres_s - self.client_s
        return {
            "wall_s": round(self.at, 3),
            "prefect_server_cpu_s": round(self.server_s, 3),
            "postgres_cpu_s": round(self.postgres_s, 3),
            "bench_client_cpu_s": round(self.client_s, 3),
            "rest_of_machine_cpu_s": round(max(0.0, others), 3),
        }


class CpuMeter:
    """CPU seconds spent by the Prefect server, its PostgreSQL backends and this process.

    Every process seen keeps its last reading (keyed by pid and start time), so a backend
    that exits between two samples does not take its CPU time with it; only what it spent
    after its last sample is lost.
    """

    def __init__(self, server: PrefectServer) -> None:
        assert server.child is not None and server.database is not None, "a running server"
        self.pgid = server.child.process.pid
        self.database = server.database
        self._server: dict[tuple[str, int], float] = {}
        self._postgres: dict[tuple[str, int], float] = {}

    def sample(self) -> CpuSample:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            stat = _proc_stat(pid)
            if stat is None:
                continue
            pgid, start, cpu = stat
            key = (pid, start)
            if pgid == self.pgid:
                self._server[key] = cpu
            elif key in self._postgres or self.database in _proc_cmdline(pid):
                self._postgres[key] = cpu
        return CpuSample(
            sum(self._server.values()),
            sum(self._postgres.values()),
            time.process_time(),
            _machine_busy_s(),
            time.perf_counter(),
        )

    def settle(
        self,
        *,
        window_s: float = 1.0,
        idle_cores: float = 0.1,
        quiet_machine_cores: float = QUIET_MACHINE_CORES,
        server_wait_s: float = 120.0,
        machine_wait_s: float = 30.0,
    ) -> Settled:
        """Wait until the server is idle and, for a while, until the machine is quiet.

        The Prefect scheduler inserts runs for new deployments in the background, and
        other programs may share the machine: without this, a measurement pays for what
        ran before it. The server must go idle (for up to ``server_wait_s``); a busy
        machine is waited for at most ``machine_wait_s`` more, then the measurement goes
        ahead (and its result says how contended it was).
        """
        started = time.perf_counter()
        server_idle_at: float | None = None
        previous = self.sample()
        quiet = False
        while True:
            time.sleep(window_s)
            current = self.sample()
            spent = current - previous
            previous = current
            server_idle = (spent.server_s + spent.postgres_s) / spent.at < idle_cores
            quiet = spent.others_cores() < quiet_machine_cores
            now = time.perf_counter()
            if server_idle and server_idle_at is None:
                server_idle_at = now
            if server_idle and quiet:
                break
            if server_idle_at is None and now - started > server_wait_s:
                break
            if server_idle_at is not None and server_idle and now - server_idle_at > machine_wait_s:
                break
        return Settled(time.perf_counter() - started, quiet)


@dataclass(frozen=True)
class Settled:
    waited_s: float
    machine_quiet: bool


# -- request counting ----------------------------------------------------------------------

READ_PATH_SUFFIXES = ("/filter", "/health", "/count", "/paginate")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_write(method: str, path: str) -> bool:
    """A request that changes something: not a GET, not a POST to a read endpoint."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    return not (method == "POST" and path.rstrip("/").endswith(READ_PATH_SUFFIXES))


def endpoint(method: str, path: str) -> str:
    """``POST /api/deployments/{id}/pause``: the path with ids and names abstracted."""
    path = _UUID.sub("{id}", path)
    path = re.sub(r"/work_pools/[^/]+", "/work_pools/{name}", path)
    path = re.sub(r"/flows/name/[^/]+", "/flows/name/{name}", path)
    return f"{method} {path}"


@dataclass
class EndpointStats:
    calls: int = 0
    seconds: float = 0.0
    response_bytes: int = 0


@dataclass
class RequestLog:
    """Counts every request of a client (httpx event hooks) and times it to its headers."""

    calls: int = 0
    writes: int = 0
    by_endpoint: dict[str, EndpointStats] = field(default_factory=dict)
    _started: dict[int, float] = field(default_factory=dict)

    async def on_request(self, request: httpx.Request) -> None:
        self.calls += 1
        if is_write(request.method, request.url.path):
            self.writes += 1
        self._started[id(request)] = time.perf_counter()

    async def on_response(self, response: httpx.Response) -> None:
        request = response.request
        started = self._started.pop(id(request), None)
        stats = self.by_endpoint.setdefault(
            endpoint(request.method, request.url.path), EndpointStats()
        )
        stats.calls += 1
        stats.response_bytes += int(response.headers.get("content-length", 0) or 0)
        if started is not None:
            stats.seconds += time.perf_counter() - started

    def httpx_settings(self) -> dict[str, Any]:
        return {"event_hooks": {"request": [self.on_request], "response": [self.on_response]}}

    def breakdown(self) -> dict[str, dict[str, float]]:
        ordered = sorted(self.by_endpoint.items(), key=lambda item: -item[1].seconds)
        return {
            name: {
                "calls": stats.calls,
                "seconds": round(stats.seconds, 4),
                "ms_per_call": round(1000 * stats.seconds / stats.calls, 2) if stats.calls else 0,
                "response_bytes": stats.response_bytes,
            }
            for name, stats in ordered
        }


# -- results -------------------------------------------------------------------------------


@dataclass
class Result:
    """One line of a results table."""

    group: str
    rows: int
    scenario: str
    seconds: float | None
    calls: int | None = None
    writes: int | None = None
    ratio: float | None = None
    ratio_of: str | None = None  # what the ratio compares with
    target: str | None = None
    met: bool | None = None
    # CPUs that other programs of the machine used meanwhile (None: not measured).
    others_cores: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def contended(self) -> bool:
        return self.others_cores is not None and self.others_cores >= QUIET_MACHINE_CORES

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(value: float | int | None, spec: str) -> str:
    if value is None:
        return "—"
    return format(value, spec)


CONTENDED_MARK = "⚠"


def print_table(console: Console, title: str, results: Sequence[Result]) -> None:
    caption = None
    if any(result.contended for result in results):
        caption = (
            f"{CONTENDED_MARK} other programs used ≥ {QUIET_MACHINE_CORES:g} CPU on average "
            f"during the measurement (of {os.cpu_count()}): its time is inflated"
        )
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    table.add_column("rows", justify="right")
    table.add_column("scenario")
    table.add_column("seconds", justify="right")
    table.add_column("API calls", justify="right")
    table.add_column("writes", justify="right")
    table.add_column("ratio vs baseline", justify="right")
    table.add_column("target")
    table.add_column("met?", justify="center")
    for result in results:
        ratio = "—"
        if result.ratio is not None:
            ratio = f"{result.ratio:.2f}" + (f" ({result.ratio_of})" if result.ratio_of else "")
        met = "—" if result.met is None else ("[green]yes[/]" if result.met else "[red]NO[/]")
        table.add_row(
            str(result.rows),
            result.scenario,
            _fmt(result.seconds, ".3f") + (f" {CONTENDED_MARK}" if result.contended else ""),
            _fmt(result.calls, "d"),
            _fmt(result.writes, "d"),
            ratio,
            result.target or "—",
            met,
        )
    console.print(table)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 to 100), nearest-rank: a value that was actually measured."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "prefect": prefect.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        # Shared machine: the load when the results were written (1, 5, 15 min).
        "loadavg": [round(value, 2) for value in os.getloadavg()],
        "memory_mb": _memory_mb(),
    }
    with contextlib.suppress(psycopg.Error):
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            info["postgresql"] = row[0] if row else None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        info["git_commit"] = commit or None
    return info


def _memory_mb() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return None


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def write_results(name: str, payload: Mapping[str, Any]) -> Path:
    """``bench/results/<name>-<UTC timestamp>.json``, written whole or not at all."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{utc_stamp()}.json"
    document = {"benchmark": name, "machine": machine_info(), **payload}
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=2, default=str) + "\n")
    temporary.replace(path)
    return path
