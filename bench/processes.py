"""Long-lived processes of a benchmark: a process worker, ``jobctl`` commands, their memory.

What ``harness`` does for the Prefect server, for the rest of the stack: every child in
a session (process group) of its own, its output in a log file, reaped with its group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from prefect.client.orchestration import get_client

from bench import harness
from tests.fixtures.processes import Child, base_env

JOBCTL_BIN = Path(sys.executable).with_name("jobctl")
PROJECT_DIR = Path(__file__).resolve().parent.parent

T = TypeVar("T")


def load_note() -> dict[str, float]:
    """The machine's load averages: the benchmarks share a 2-core machine with other work."""
    one, five, fifteen = os.getloadavg()
    return {
        "loadavg_1m": round(one, 2),
        "loadavg_5m": round(five, 2),
        "loadavg_15m": round(fifteen, 2),
    }


def load_text(note: dict[str, float]) -> str:
    return f"load {note['loadavg_1m']:.2f} / {note['loadavg_5m']:.2f} / {note['loadavg_15m']:.2f}"


# -- memory ----------------------------------------------------------------------------------


def _status_kb(pid: int, key: str) -> int:
    """A ``kB`` line of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``); 0 if the process is gone."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory since it started."""
    return _status_kb(pid, "VmHWM") / 1024


def group_pids(pgid: int) -> list[int]:
    pids: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[2]) == pgid:
                pids.append(int(entry))
    return pids


def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process of a group (a worker and its flow-run processes)."""
    return sum(rss_mb(pid) for pid in group_pids(pgid))


@dataclass
class MemoryPeak:
    """The largest resident memory of a process, and of its group, seen while sampling."""

    pid: int
    process_mb: float = 0.0
    group_mb: float = 0.0
    group_processes: int = 0

    def sample(self) -> None:
        self.process_mb = max(self.process_mb, rss_mb(self.pid))
        pids = group_pids(self.pid)
        self.group_mb = max(self.group_mb, sum(rss_mb(pid) for pid in pids))
        self.group_processes = max(self.group_processes, len(pids))


async def sample_memory(peaks: list[MemoryPeak], stop: asyncio.Event, every_s: float = 0.5) -> None:
    while not stop.is_set():
        for peak in peaks:
            await asyncio.to_thread(peak.sample)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)


# -- children --------------------------------------------------------------------------------


@contextlib.contextmanager
def temporary_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def child(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[Child]:
    process = Child(args, env=env, log_path=log_path)
    try:
        yield process
    finally:
        process.stop()


def stack_env(api_url: str, database_url: str, pool: str, **extra: object) -> dict[str, str]:
    """What a worker, a watcher or the API of one jobctl needs, and nothing inherited."""
    return base_env(
        PREFECT_API_URL=api_url,
        JOBCTL_DATABASE_URL=database_url,
        JOBCTL_WORK_POOL=pool,
        **extra,
    )


@dataclass(frozen=True)
class WorkerTuning:
    """The worker's polling: how often it asks for runs and how far ahead it takes them."""

    query_s: float | None = None  # PREFECT_WORKER_QUERY_SECONDS (Prefect's default: 10)
    prefetch_s: float | None = None  # PREFECT_WORKER_PREFETCH_SECONDS (Prefect's default: 10)

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.query_s is not None:
            env["PREFECT_WORKER_QUERY_SECONDS"] = f"{self.query_s:g}"
        if self.prefetch_s is not None:
            env["PREFECT_WORKER_PREFETCH_SECONDS"] = f"{self.prefetch_s:g}"
        return env


@contextlib.contextmanager
def process_worker(
    api_url: str,
    database_url: str,
    pool: str,
    tuning: WorkerTuning,
    log_path: Path,
    worker_type: str = "process",
) -> Iterator[Child]:
    """``prefect worker start --type process`` on ``pool``: each flow run is a subprocess
    (``worker_type="jobctl-warm"``: forked from the warm worker's template)."""
    env = stack_env(api_url, database_url, pool, **tuning.env())
    args = [str(harness.PREFECT_BIN), "worker", "start", "--pool", pool, "--type", worker_type]
    with child(args, env, log_path) as worker:
        wait_until(lambda: asyncio.run(_worker_online(pool)), 120, "the worker online", worker)
        yield worker


async def _worker_online(pool: str) -> bool:
    async with get_client() as client:
        with contextlib.suppress(Exception):
            return bool(await client.read_workers_for_work_pool(pool))
    return False


def wait_until(
    check: Callable[[], T], timeout_s: float, what: str, process: Child | None = None
) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if process is not None and not process.alive():
            raise RuntimeError(f"{what}: the process exited:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            tail = process.log_tail() if process is not None else ""
            raise TimeoutError(f"{what}: not within {timeout_s}s\n{tail}")
        time.sleep(0.25)
