"""Processes left behind by a child: found through Linux's /proc and ended.

Prefect's process worker starts each flow run in a session of its own, so signalling the
worker's process group does not reach its runs, and a run outlives a worker that is
killed. ``jobctl up`` adopts such orphans (a child subreaper) and ends them itself.
Elsewhere than Linux these are no-ops.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PROC = Path("/proc")


def adopt_orphans() -> None:
    """Become the parent of every orphaned descendant, instead of init (Linux)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def ending_with(parent_pid: int, sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that sends the child ``sig`` when ``parent_pid`` dies (Linux's
    parent-death signal): whatever kills its parent, even SIGKILL, the child learns it at
    once. None elsewhere than Linux."""
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork

    def set_parent_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)

    return set_parent_death_signal


GUARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_guarded(args: list[str], env: dict[str, str]) -> int:
    """Run ``args`` as a child and stand guard over everything it starts; its exit status
    as a shell gives it (128 + N if a signal N ended it).

    Whatever ends the child, even SIGKILL, what it leaves behind is ended here: as a child
    subreaper this process adopts the child's orphans (flow runs start sessions of their
    own, out of reach of any group signal), and ends them once the child is gone. Signals
    sent here are passed on to the child; if this process is killed, the child gets
    SIGTERM (a parent-death signal) and stops cleanly itself.
    """
    if sys.platform != "linux":
        return shell_status(subprocess.call(args, env=env))
    adopt_orphans()
    child = subprocess.Popen(args, env=env, preexec_fn=ending_with(os.getpid(), signal.SIGTERM))

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in GUARDED_SIGNALS}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        end([pid for pid, _ in descendants(os.getpid())], grace_s=5)
    return shell_status(code)


def shell_status(returncode: int) -> int:
    """A child's exit status as a shell reports it: ``subprocess``'s -N for a child that a
    signal N ended is 128 + N (``sys.exit(-N)`` would exit with 256 - N)."""
    return 128 - returncode if returncode < 0 else returncode


def _parent_of(pid_dir: Path) -> int | None:
    try:
        stat = (pid_dir / "stat").read_text()
    except OSError:
        return None  # exited meanwhile
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process below ``pid``."""
    if not PROC.is_dir():
        return []
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (parent := _parent_of(entry)) is not None:
            children.setdefault(parent, []).append(int(entry.name))
    found: list[tuple[int, str]] = []
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        try:
            cmdline = (PROC / str(child) / "cmdline").read_bytes()
        except OSError:
            continue
        found.append((child, cmdline.replace(b"\0", b" ").decode(errors="replace").strip()))
        pending.extend(children.get(child, []))
    return found


def exists(pid: int) -> bool:
    """The process exists (a zombie not yet reaped included), whoever owns it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped."""
    try:
        state = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def end(pids: Collection[int], *, grace_s: float) -> None:
    """SIGTERM, then SIGKILL after ``grace_s`` what is still running; reap our own."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        left = [pid for pid in pids if alive(pid)]
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while any(alive(pid) for pid in left) and time.monotonic() < deadline:
            time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
