"""``jobctl up``: the whole system on one machine, supervised by one process.

A Prefect server (unless PREFECT_API_URL points at one), the static deployments of
prefect.yaml, one process worker in the project folder, and the sync watcher. Every child
runs in its own process group and is stopped, group, flow runs and all, when ``up`` ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import yaml
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments import sync as schedule_sync
from deployments import watch as schedule_watch
from jobctl import db, errors, migrate, processes, status_queries
from jobctl.models import JobStatus
from jobctl.prefect.gateway.client import connect
from jobctl.prefect.gateway.connection import health_problem, prefect_api_url
from jobctl.records import HistoryFilter, ScheduleSpec
from jobctl.repository import Repository
from jobctl.settings import Settings
from jobctl.supervision import Backoff, sleep_unless_stopped

logger = logging.getLogger("jobctl.up")

PROJECT_DIR = Path(__file__).resolve().parents[2]
PREFECT_YAML = PROJECT_DIR / "prefect.yaml"
BIN_DIR = Path(sys.executable).parent
DEFAULT_PORT = 4200
SERVER_START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 20
RESTART_MAX_DELAY_S = 60.0
# Each stops the whole stack cleanly: Ctrl-C, a service manager, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# On time to the second: the worker polls every 2 s (Prefect: 10 s) and starts a flow
# process up to 40 s before its run is due (Prefect: 10 s); Prefect's engine then waits
# for the scheduled time itself. 40 s covers the start-up of a minute's runs at once (a
# few seconds of CPU each) on a small machine. Values set in the environment win.
WORKER_TUNING = {
    "PREFECT_WORKER_QUERY_SECONDS": "2",
    "PREFECT_WORKER_PREFETCH_SECONDS": "40",
}
# A run of an ``overlap=queue`` row that finds its predecessor still running is put back
# for this long before it tries again (Prefect: 30 s), so it starts within seconds of
# the predecessor's end. The leases of deployment concurrency slots (``overlap`` rows)
# are kept on disk, not in the server's memory: after a server restart, a run taken
# before it (workers take runs 40 s ahead) found its lease gone, could not take the slot
# its lost lease still held, and Prefect cancelled it ("Deployment concurrency slot lost
# during provisioning"; chaos soak, seed 18). Values set in the environment win.
LEASES_ON_DISK = "prefect.server.concurrency.lease_storage.filesystem"
SERVER_TUNING = {
    "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "5",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": LEASES_ON_DISK,
}

DEMO_ROWS = [
    ScheduleSpec(
        cron="* * * * *",
        job_name="processData",
        param=["param1", "param2"],
        description="demo: every minute",
        priority=1,
    ),
    ScheduleSpec(
        cron="*/2 * * * *",
        job_name="fail",
        param="a demo failure",
        description="demo: fails, retried twice 5 s apart",
        max_retries=2,
        retry_delay_ms=5_000,
        priority=5,
    ),
    ScheduleSpec(
        cron="0 * * * *",
        job_name="sleep",
        param=3,
        description="demo: disabled",
        is_active=False,
    ),
]


def free_port(start: int) -> int:
    for port in range(start, start + 100):
        with socket.socket() as sock:
            # As the server binds: a port whose connections wait in TIME_WAIT (the server
            # that had it just stopped) is free, one a server listens on is not.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise errors.JobctlError(f"no free port in {start}..{start + 99}")


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    log: IO[bytes]
    process: subprocess.Popen[bytes] = field(init=False)
    started_at: float = field(init=False, default=0.0)
    restarts: Backoff = field(default_factory=lambda: Backoff(1.0, RESTART_MAX_DELAY_S))

    def start(self) -> None:
        """Start (or start again) in a session of its own, killed if ``up`` dies."""
        self.process = subprocess.Popen(
            self.args,
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=processes.ending_with(os.getpid()),
        )
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGINT the child's whole group, end the processes it started, and SIGKILL what
        is left after a grace.

        SIGINT, not SIGTERM: `prefect worker start` relays SIGTERM to its worker as a
        SIGINT it then waits on, and took over 20 s to exit here; on SIGINT it exits in 2 s,
        unless a flow run is in flight: the worker waits for it. Prefect starts flow runs in
        sessions of their own, out of reach of the group's signal, so they are ended here.
        """
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        started = [pid for pid, _ in processes.descendants(self.process.pid)]
        processes.end(started, grace_s=STOP_TIMEOUT_S / 2)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning("%s ignored SIGINT; killing it", self.name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_S)
        self.log.close()


def in_pool(config: dict[str, Any], pool: str) -> dict[str, Any]:
    """prefect.yaml's deployments (``config``, as read) moved into ``pool``. In a pool other
    than the one the file names, each is named after the pool too (``every-minute-<pool>``):
    a deployment is one per flow and name on a Prefect server, and two stacks of different
    pools on one server would otherwise take it from each other (their sync and purge then
    running on the other's worker, against the other's database)."""
    moved = copy.deepcopy(config)
    for deployment in moved["deployments"]:
        current = deployment.get("work_pool") or {}
        if current.get("name") != pool:
            deployment["name"] = f"{deployment['name']}-{pool}"
        deployment["work_pool"] = {**current, "name": pool}
    return moved


@dataclass
class Stack:
    settings: Settings
    state_dir: Path
    children: list[Child] = field(default_factory=list)
    api_url: str = ""
    last_sync: str = "not yet"
    sync_failing_since: datetime | None = None

    # -- start-up --------------------------------------------------------------------

    def synced(self, report: schedule_sync.SyncReport) -> None:
        self.sync_failing_since = None
        self.last_sync = f"{datetime.now(UTC):%H:%M:%S} {report.summary()}"

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        child = Child(name, args, env, (self.state_dir / f"{name}.log").open("ab"))
        child.start()
        self.children.append(child)
        return child

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PREFECT_API_URL=self.api_url,
            JOBCTL_DATABASE_URL=self.settings.database_url,
            JOBCTL_WORK_POOL=self.settings.work_pool,
        )
        return env

    def start_server(self) -> None:
        configured = prefect_api_url()
        if configured:
            self.api_url = configured
            return
        port = free_port(DEFAULT_PORT)
        self.api_url = f"http://127.0.0.1:{port}/api"
        env = {**SERVER_TUNING, **os.environ}
        env.update(
            PREFECT_HOME=str(self.state_dir / "prefect"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_API_URL=self.api_url,
        )
        server = self.spawn(
            "server",
            [
                str(BIN_DIR / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env,
        )
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not server.alive():
                raise errors.PrefectUnavailable(
                    f"the Prefect server exited; see {self.state_dir / 'server.log'}"
                )
            if health_problem(self.api_url, timeout_s=2) is None:
                return
            time.sleep(0.5)
        raise errors.PrefectUnavailable(
            f"the Prefect server did not answer in {SERVER_START_TIMEOUT_S} s"
        )

    def deploy_static_flows(self) -> None:
        """``prefect deploy --all`` of prefect.yaml's deployments, into our pool (which the
        first sync made): one ``prefect`` process, from a copy of the file naming our pool
        (``deploy --all`` ignores ``--pool``)."""
        config = in_pool(yaml.safe_load(PREFECT_YAML.read_text()), self.settings.work_pool)
        prefect_file = self.state_dir / "prefect.yaml"
        prefect_file.write_text(yaml.safe_dump(config, sort_keys=False))
        args = ["--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)]
        done = subprocess.run(
            [str(BIN_DIR / "prefect"), *args],
            preexec_fn=processes.ending_with(os.getpid()),
            cwd=PROJECT_DIR,
            # prefect.yaml's pull step names {{ $PWD }}: the project folder.
            env={**self.child_env(), "PWD": str(PROJECT_DIR)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            output = " ".join((done.stdout + done.stderr).split())
            raise errors.JobctlError(f"`prefect {' '.join(args)}` failed: {output[-500:]}")

    def start_worker(self) -> None:
        self.spawn(
            "worker",
            [str(BIN_DIR / "prefect"), "worker", "start", "--pool", self.settings.work_pool,
             "--type", self.settings.worker_type],
            # A jobctl-warm worker renews its template when a file under jobs/ changes
            # (unless JOBCTL_WORKER_RELOAD says otherwise).
            {"JOBCTL_WORKER_RELOAD": "true", **WORKER_TUNING, **self.child_env()},
        )  # fmt: skip

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()


def absolute_database_url(url: str) -> str:
    """SQLite paths made absolute: flow processes run in other working directories."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str((Path.cwd() / url.removeprefix(prefix)).resolve())
    return url


@contextlib.contextmanager
def single_instance(state_dir: Path) -> Iterator[None]:
    lock_path = state_dir / "up.lock"
    handle = lock_path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise errors.AlreadyRunning(
            f"jobctl up is already running here ({holder}); stop it with Ctrl-C first"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def add_demo_rows(repository: Repository) -> int:
    if repository.list_schedules():
        return 0
    for spec in DEMO_ROWS:
        repository.add_schedule(spec)
    return len(DEMO_ROWS)


def status_line(stack: Stack, repository: Repository) -> str:
    since = datetime.now(UTC) - timedelta(hours=1)
    try:
        recent = repository.list_history(HistoryFilter(since=since, limit=10_000))
        failed = sum(a.status is JobStatus.FAILED for a in recent)
        missed = status_queries.missed_since(repository, since)
        runs = f"{len(recent)} attempt(s) in the last hour, {failed} failed, {missed} missed"
        pause = repository.get_maintenance_or_none()
        if pause is not None and pause.is_on(datetime.now(UTC)):
            runs += f" | {pause.describe()}"
    except errors.JobctlError as exc:
        runs = f"history unavailable ({exc})"
    alive = ", ".join(f"{c.name} {'up' if c.alive() else 'DOWN'}" for c in stack.children)
    return f"[{datetime.now(UTC):%H:%M:%S} UTC] {alive} | last sync: {stack.last_sync} | {runs}"


class _Stdout:
    # Whether a line ever failed for a closed stdout. Sticky: after the first failure
    # stdout is /dev/null, where every later line succeeds (a line before the status loop
    # that met the closed pipe left `up` printing status lines to nowhere, forever).
    closed = False


def say(text: str) -> bool:
    """Print a line; False once standard output is closed (a pipe's reader gone), and for
    every line after that."""
    if _Stdout.closed:
        return False
    try:
        print(text, flush=True)
    except (BrokenPipeError, ValueError):  # ValueError: sys.stdout itself was closed
        _Stdout.closed = True
        # Python flushes stdout again at exit: give it somewhere to go.
        sys.stdout = open(os.devnull, "w")
        return False
    return True


async def supervise(stack: Stack, repository: Repository, status_every_s: float) -> None:
    """Print the status until a stop signal, restarting the watcher and any child that
    dies (after a delay that doubles while it keeps dying); a closed stdout stops all."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)

    def on_error(exc: Exception) -> None:
        stack.sync_failing_since = stack.sync_failing_since or datetime.now(UTC)
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        stack.last_sync = f"FAILING since {stack.sync_failing_since:%H:%M:%S}: {reason}"

    def start_watcher() -> asyncio.Task[None]:
        return asyncio.create_task(
            schedule_watch.watch(
                stack.settings, repository, stop=stop, on_sync=stack.synced, on_error=on_error
            )
        )

    watcher = start_watcher()
    while not stop.is_set():
        if not say(status_line(stack, repository)):
            logger.error("standard output is closed; stopping")
            break
        if watcher.done() and not stop.is_set():
            failure = None if watcher.cancelled() else watcher.exception()
            say(f"the sync watcher stopped ({failure!r}); restarting it")
            watcher = start_watcher()
        for child in stack.children:
            await _restart_if_dead(stack, child, stop)
        await sleep_unless_stopped(stop, status_every_s)
    stop.set()
    await watcher


async def _restart_if_dead(stack: Stack, child: Child, stop: asyncio.Event) -> None:
    if child.alive():
        if time.monotonic() - child.started_at > RESTART_MAX_DELAY_S:
            child.restarts.reset()  # it has run long enough: the next death starts anew
        return
    delay_s = child.restarts.next_delay_s()
    say(
        f"{child.name} exited with code {child.process.returncode} "
        f"(see {stack.state_dir / child.name}.log); restarting it in {delay_s:.0f} s"
    )
    await sleep_unless_stopped(stop, delay_s)
    if not stop.is_set():
        child.start()


def _raise_keyboard_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def up(settings: Settings, *, demo: bool, state_dir: Path, status_every_s: float) -> None:
    """Run and supervise the stack until SIGINT, SIGTERM, SIGHUP or a closed stdout.

    Every child dies with ``up`` even when ``up`` is killed (a parent-death signal), and
    what ``up`` stops it stops whole: the worker's flow runs and any orphan included.
    """
    # Until the supervisor's own handlers take over, and while it starts: stop cleanly.
    previous_handlers = {sig: signal.signal(sig, _raise_keyboard_interrupt) for sig in STOP_SIGNALS}
    # Absolute, as the database URL: the children run in the project folder, not in ours.
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    settings = settings.model_copy(
        update={"database_url": absolute_database_url(settings.database_url)}
    )
    with single_instance(state_dir):
        processes.adopt_orphans()
        engine = db.create_db_engine(settings.database_url)
        migrate.upgrade(engine)
        repository = Repository(engine)
        stack = Stack(settings=settings, state_dir=state_dir)
        try:
            stack.start_server()
            with temporary_settings(updates={PREFECT_API_URL: stack.api_url}):
                if demo and (added := add_demo_rows(repository)):
                    say(f"added {added} demo schedules (jobctl schedule list)")
                asyncio.run(_first_sync(stack, repository))
                stack.start_worker()  # its start overlaps the deploy's
                stack.deploy_static_flows()
                say(f"Prefect UI: {stack.api_url.removesuffix('/api')}  (Ctrl-C stops everything)")
                say(f"in another terminal: export PREFECT_API_URL={stack.api_url}")
                asyncio.run(supervise(stack, repository, status_every_s))
        except KeyboardInterrupt:
            # A stop signal before the supervisor's handlers took over (even between the
            # line above and its loop's start): stopped as asked, not an error.
            pass
        finally:
            # Stopping is not interrupted: a second Ctrl-C or a closed terminal now would
            # leave the children half-stopped.
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            say("stopping...")
            stack.stop()
            # What outlived its parent (a worker killed mid-run) was adopted: end it too.
            processes.end([pid for pid, _ in processes.descendants(os.getpid())], grace_s=5)
            engine.dispose()
            say("stopped")
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)


async def _first_sync(stack: Stack, repository: Repository) -> None:
    async with connect() as gateway:
        report = await schedule_sync.sync(stack.settings, repository, gateway)
    say(report.summary())
    stack.synced(report)
