"""The soak's processes, each kept running as systemd's ``Restart=always`` would.

Every service is a child of the soak in a session of its own, with its output in a log
file, and dies with the soak whatever ends it (a parent-death signal; PostgreSQL gets
SIGQUIT, its immediate shutdown). A service that exits is started again
``RESTART_DELAY_S`` later (systemd's ``RestartSec``); one asked to stop with SIGTERM that
has not exited ``STOP_TIMEOUT_S`` later is killed with its group (``TimeoutStopSec``).

Children are started from the soak's main thread only: a parent-death signal fires when
the *thread* that forked the child ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jobctl import processes

RESTART_DELAY_S = 3.0
STOP_TIMEOUT_S = 30.0
PROJECT_DIR = Path(__file__).resolve().parents[2]
# Every process of a soak carries this variable: what is left at the end is found by it.
MARKER = "JOBCTL_CHAOS_SOAK"


@dataclass
class Service:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    user: str | None = None  # run as this user (PostgreSQL refuses root)
    death_signal: int = signal.SIGKILL
    restart_delay_s: float = RESTART_DELAY_S
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exits: list[int] = field(default_factory=list)
    _restart_at: float | None = None
    _kill_at: float | None = None
    on_start: Callable[[Service], None] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} never started"
        return self.process.pid

    def start(self) -> None:
        env = {**self.env, MARKER: str(os.getpid())}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args,
                cwd=PROJECT_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self.user,
                preexec_fn=processes.ending_with(os.getpid(), self.death_signal),
            )
        self.starts += 1
        self._restart_at = self._kill_at = None
        if self.on_start is not None:
            self.on_start(self)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tick(self, now: float) -> None:
        """Restart after an exit, kill after an ignored SIGTERM: call it often."""
        if self.process is None:
            return
        code = self.process.poll()
        if code is None:
            if self._kill_at is not None and now >= self._kill_at:
                self.kill_tree(signal.SIGKILL)
            return
        if self._restart_at is None:
            self.exits.append(code)
            self._restart_at = now + self.restart_delay_s
            self.kill_tree(signal.SIGKILL)  # what the service left behind (its cgroup)
        elif now >= self._restart_at:
            self.start()

    def terminate(self) -> None:
        """SIGTERM to the main process, as ``systemctl stop`` (KillMode=mixed) does."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            self._kill_at = time.monotonic() + STOP_TIMEOUT_S

    def interrupt(self) -> None:
        """SIGINT to the main process (PostgreSQL's fast shutdown)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)

    def kill_tree(self, sig: int = signal.SIGKILL) -> None:
        """``sig`` to every process below the service and to its group: a lost machine."""
        if self.process is None:
            return
        for pid, _ in processes.descendants(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stop(self, grace_s: float = 10.0) -> None:
        """For good, at the end: SIGINT (SIGTERM for PostgreSQL's children is its own
        business), then SIGKILL of whatever is left."""
        if self.process is None:
            return
        self._restart_at = float("inf")
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace_s)
        self.kill_tree(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def log_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


def leftovers(soak_pid: int) -> list[int]:
    """Processes still carrying the soak's marker (flow runs orphaned by a killed worker)."""
    found = []
    needle = f"{MARKER}={soak_pid}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == soak_pid:
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def end_leftovers(soak_pid: int) -> None:
    processes.end(leftovers(soak_pid), grace_s=3)
