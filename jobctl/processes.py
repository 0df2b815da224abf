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


def ending_with(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child die (SIGKILL) when ``parent_pid`` dies (Linux's
    parent-death signal): whatever kills its parent, even SIGKILL, the child does not
    outlive it. None elsewhere than Linux."""
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork

    def set_parent_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)

    return set_parent_death_signal


def end_with_parent() -> None:
    """This process dies (SIGKILL) when its parent dies (Linux)."""
    if sys.platform != "linux":
        return
    parent_pid = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


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
