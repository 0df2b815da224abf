"""What the test suite spends its CPU on: per test file, per test and per kind of process.

``python -m bench.suite_cost [PYTEST ARGS]`` runs pytest as ``make test`` does (pyproject's
options), with the arguments given added, while it reads the CPU time of every process from
``/proc`` twice a second.
Each process is charged to the test running, at that moment, in the pytest process it
descends from (an xdist worker): a worker's session Prefect server serves only that
worker's tests, so its CPU is charged to them too. What descends from no test process
(another test's PostgreSQL cluster, this machine's other work) is reported as unattributed.

``make test`` is CPU-bound on two cores: these figures, not its wall time, say what a change
to the suite saved. Linux only.
"""

from __future__ import annotations

import bisect
import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.timeline_plugin import TIMELINE_ENV

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SAMPLE_EVERY_S = 0.5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The kind of a process, by a piece of its command line, first match wins.
KINDS = (
    ("prefect server start", "Prefect server"),
    ("(prefect server)", "Prefect server"),  # forked from the tests' zygote
    ("worker start", "Prefect worker"),
    ("tests.fixtures.zygote", "Prefect worker"),  # the zygote, and the workers it forked
    ("multiprocessing.forkserver", "warm template and runs"),
    ("prefect.runner._workspace_supervisor", "process-worker runs"),
    ("exec(eval(sys.stdin.readline()))", "pytest (xdist worker)"),
    ("pytest", "pytest"),
    ("jobctl", "jobctl processes"),
    ("postgres", "PostgreSQL"),
    ("prefect", "other Prefect CLI"),
)

Process = tuple[int, str]  # pid, start time in clock ticks (a pid can be reused)
PerKind = defaultdict[str, float]  # kind of process -> CPU-s


@dataclass(frozen=True)
class Span:
    pid: int
    nodeid: str
    start: float
    end: float


@dataclass
class Samples:
    """CPU seconds used by each process between samples, and who started whom."""

    parent: dict[Process, Process | None] = field(default_factory=dict)
    command: dict[Process, str] = field(default_factory=dict)
    used: list[tuple[float, Process, float]] = field(default_factory=list)  # at, by, CPU-s


def kind_of(command: str) -> str:
    return next((kind for piece, kind in KINDS if piece in command), "other")


def charge(samples: Samples, spans: Iterable[Span]) -> dict[str, PerKind]:
    """CPU seconds per test node id, split by kind of process; unattributed under ``""``."""
    by_pid: dict[int, list[Span]] = defaultdict(list)
    for span in spans:
        by_pid[span.pid].append(span)
    for runs in by_pid.values():
        runs.sort(key=lambda span: span.start)
    starts = {pid: [span.start for span in runs] for pid, runs in by_pid.items()}
    owner: dict[Process, int | None] = {}

    def owner_of(process: Process) -> int | None:
        chain: list[Process] = []
        found: int | None = None
        current: Process | None = process
        while current is not None:
            if current in owner:
                found = owner[current]
                break
            chain.append(current)
            if current[0] in by_pid:
                found = current[0]
                break
            current = samples.parent.get(current)
        for link in chain:
            owner[link] = found
        return found

    cost: dict[str, PerKind] = defaultdict(lambda: defaultdict(float))
    for at, process, seconds in samples.used:
        kind = kind_of(samples.command.get(process, ""))
        pid = owner_of(process)
        nodeid = ""
        if pid is not None:
            index = bisect.bisect_right(starts[pid], at) - 1
            if index >= 0 and at <= by_pid[pid][index].end + SAMPLE_EVERY_S:
                nodeid = by_pid[pid][index].nodeid
        cost[nodeid][kind] += seconds
    return cost


class Sampler:
    """Reads ``/proc`` every ``SAMPLE_EVERY_S`` in a thread of its own until stopped."""

    def __init__(self) -> None:
        self.samples = Samples()
        self._last: dict[Process, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="suite-cost-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._read(baseline=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self._read()

    def _read(self, *, baseline: bool = False) -> None:
        """``baseline``: the processes already running are charged only from now on."""
        now = time.time()
        seen: dict[int, tuple[Process, int, float]] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
                seen[int(entry.name)] = stat
        for pid, (process, parent_pid, cpu) in seen.items():
            if process not in self.samples.parent:
                parent = seen.get(parent_pid)
                self.samples.parent[process] = parent[0] if parent else None
                self.samples.command[process] = _command(pid)
                self._last[process] = cpu if baseline else 0.0
            if (used := cpu - self._last[process]) > 0:
                self.samples.used.append((now, process, used))
            self._last[process] = cpu


def _stat(pid: int) -> tuple[Process, int, float] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # ended between the listing and the read
        return None
    fields = raw.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
    return (pid, fields[19]), int(fields[1]), cpu


def _command(pid: int) -> str:
    """The command line, and the process's name in parentheses: a process forked from the
    tests' zygote keeps the zygote's command line and names itself (``prefect server``)."""
    try:
        line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
    return f"{line.decode(errors='replace')}({name})"


def read_timeline(path: Path) -> list[Span]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Span(*json.loads(line)) for line in lines if line]


def by_file(cost: Mapping[str, PerKind]) -> dict[str, PerKind]:
    files: dict[str, PerKind] = defaultdict(lambda: defaultdict(float))
    for nodeid, kinds in cost.items():
        for kind, seconds in kinds.items():
            files[nodeid.split("::")[0] or "(unattributed)"][kind] += seconds
    return files


def report(cost: Mapping[str, PerKind], wall_s: float, console: Console, top: int = 25) -> None:
    total = sum(sum(kinds.values()) for kinds in cost.values())
    kinds: PerKind = defaultdict(float)
    for per_kind in cost.values():
        for kind, seconds in per_kind.items():
            kinds[kind] += seconds
    console.print(
        f"{total:,.0f} CPU-s in {wall_s:,.0f} s of wall time "
        f"({total / wall_s:.2f} cores busy on average)"
    )
    table = Table("kind of process", "CPU-s", "share", title="By kind of process")
    for kind, seconds in _largest(kinds):
        table.add_row(kind, f"{seconds:,.0f}", f"{seconds / total:.0%}")
    console.print(table)
    for title, rows in (("By test file", by_file(cost)), ("By test", dict(cost))):
        table = Table(title[3:], "CPU-s", "share", "largest kinds", title=title)
        ranked = sorted(rows.items(), key=lambda item: -sum(item[1].values()))
        for name, per_kind in ranked[:top]:
            seconds = sum(per_kind.values())
            largest = ", ".join(f"{k} {v:.0f}" for k, v in _largest(per_kind)[:3])
            table.add_row(
                name or "(unattributed)", f"{seconds:,.1f}", f"{seconds / total:.1%}", largest
            )
        console.print(table)


def _largest(per_kind: Mapping[str, float]) -> list[tuple[str, float]]:
    return sorted(per_kind.items(), key=lambda item: -item[1])


def main(argv: list[str]) -> int:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(exist_ok=True)
    timeline = RESULTS_DIR / f"suite-cost-{stamp}.timeline"
    env = {**os.environ, TIMELINE_ENV: str(timeline)}
    began = time.monotonic()
    with Sampler() as sampler:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "bench.timeline_plugin", *argv], env=env
        )
    wall_s = time.monotonic() - began
    cost = charge(sampler.samples, read_timeline(timeline))
    timeline.unlink(missing_ok=True)
    report(cost, wall_s, Console())
    result = RESULTS_DIR / f"suite-cost-{stamp}.json"
    result.write_text(
        json.dumps(
            {"pytest_args": argv, "exit_code": done.returncode, "wall_s": round(wall_s, 1),
             "cpu_s": {nodeid or "(unattributed)": dict(kinds) for nodeid, kinds in cost.items()}},
            indent=1,
        )
    )  # fmt: skip
    print(f"written: {result}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
