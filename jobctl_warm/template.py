"""The warm template of a worker process: multiprocessing's forkserver, preloaded.

The forkserver is a process of its own, started from a clean interpreter (never a fork of
the worker, which holds an event loop, threads and sockets). It imports
``jobctl_warm.preload`` once and forks a child per start request. If it dies, the next
start builds a new one, and the worker's log says so. ``retire`` leaves the current one to
finish the runs it forked and builds a fresh one for the next runs (new code).

A forkserver runs until every holder of its "alive" pipe has closed it, and reports the
exit status of a child only while it runs: a retired template's pipe is kept open here
until the last process it forked has been waited for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.process
import os
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing import util
from multiprocessing.process import BaseProcess

import anyio

from jobctl import processes
from jobctl_warm import child

PRELOAD = ["jobctl_warm.preload"]
# The exit status multiprocessing reports when the template vanished before its child.
LOST_STATUS = 255


def _server() -> multiprocessing.forkserver.ForkServer:
    return multiprocessing.forkserver._forkserver


class Template:
    def __init__(self, logger: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> None:
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        # Read by ``preload`` when a template starts: it imports what this process would.
        os.environ[child.SYS_PATH_ENV] = json.dumps(sys.path)
        self._logger = logger
        self._lock = threading.Lock()
        self._known_pid: int | None = None
        self._forked_by: dict[int, int | None] = {}  # live process -> its template
        self._retired: dict[int, int] = {}  # retired template -> its alive pipe, still open
        self._ended: list[int] = []  # released templates, to reap

    @property
    def pid(self) -> int | None:
        pid: int | None = _server()._forkserver_pid  # type: ignore[attr-defined]
        return pid

    def build(self) -> float:
        """Start the template and wait until its preload is done; the seconds it took.

        Blocking: call it from a thread.
        """
        began = time.monotonic()
        process = self.start(child.noop)
        process.join()
        self._done(process)
        return time.monotonic() - began

    def start(self, target: Callable[..., object], *args: object) -> BaseProcess:
        """Fork a process running ``target(*args)`` from the template. Blocking."""
        with self._lock:
            process = self._context.Process(
                target=target, args=args, name="jobctl-warm", daemon=False
            )
            process.start()
            # Not multiprocessing's to join at this process's exit: a flow process outlives
            # a stopped worker, as on Prefect's process worker.
            multiprocessing.process._children.discard(process)  # type: ignore[attr-defined]
            self._note_pid()
            if process.pid is not None:
                self._forked_by[process.pid] = self.pid
        self._reap()
        return process

    async def wait(self, process: BaseProcess) -> int:
        """The exit status of ``process`` (negative: killed by that signal)."""
        try:
            await anyio.wait_readable(process.sentinel)
            status = process.exitcode
            if status == LOST_STATUS and process.pid is not None and processes.exists(process.pid):
                self._logger.warning(
                    "the warm template died while flow process %s ran: its exit status is "
                    "unknown; waiting for it to end",
                    process.pid,
                )
                while processes.exists(process.pid):
                    await anyio.sleep(0.5)
        finally:
            self._done(process)
        assert status is not None
        return status

    def _done(self, process: BaseProcess) -> None:
        """``process`` was waited for: a retired template with no process left may end."""
        with self._lock:
            if process.pid is not None:
                self._forked_by.pop(process.pid, None)
        self._release()

    def _release(self) -> None:
        """Close the alive pipe of each retired template that forked no live process."""
        with self._lock:
            busy = set(self._forked_by.values())
            for pid, alive_fd in list(self._retired.items()):
                if pid not in busy:
                    os.close(alive_fd)
                    del self._retired[pid]
                    self._ended.append(pid)
        self._reap()

    def retire(self) -> None:
        """The next start builds a new template; this one ends after the runs it forked."""
        server = _server()
        with self._lock, server._lock:  # type: ignore[attr-defined]
            pid = server._forkserver_pid  # type: ignore[attr-defined]
            if pid is None:
                return
            self._retired[pid] = server._forkserver_alive_fd  # type: ignore[attr-defined]
            address = server._forkserver_address  # type: ignore[attr-defined]
            if address and not util.is_abstract_socket_namespace(address):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(address)
            server._forkserver_pid = None  # type: ignore[attr-defined]
            server._forkserver_alive_fd = None  # type: ignore[attr-defined]
            server._forkserver_address = None  # type: ignore[attr-defined]
            self._known_pid = None
        self._release()
        self._logger.info("retired the warm template (pid %s); the next run builds a new one", pid)

    def _note_pid(self) -> None:
        pid = self.pid
        if self._known_pid is not None and pid != self._known_pid:
            self._logger.warning(
                "the warm template (pid %s) had died; rebuilt it (pid %s)", self._known_pid, pid
            )
        self._known_pid = pid

    def _reap(self) -> None:
        """Collect the exit status of released templates that have ended."""
        for pid in list(self._ended):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._ended.remove(pid)
