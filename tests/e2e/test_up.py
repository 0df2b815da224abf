"""`jobctl up` runs the whole system, refuses to start twice, and stops every child."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from jobctl.cli import stack as stack_module
from jobctl.models import JobStatus
from jobctl.processes import alive, descendants
from jobctl.records import HistoryFilter
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.conftest import ScheduleFactory
from tests.fixtures.processes import Child, base_env, flow_processes, wait_for

JOBCTL = str(Path(sys.executable).with_name("jobctl"))


def _environ(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)
def test_up_runs_schedules_and_ctrl_c_stops_everything(
    database_url: str, repo: Repository, schedule_factory: ScheduleFactory, tmp_path: Path
) -> None:
    row = repo.add_schedule(schedule_factory(cron="* * * * *", timeout_ms=0, max_retries=0))
    # In flight when Ctrl-C comes: the worker's flow runs must stop with it.
    long_run = repo.add_schedule(
        schedule_factory(cron="* * * * *", job_name="sleep", param=600, timeout_ms=0,
                         max_retries=0, overlap="allow")
    )  # fmt: skip
    # Run from a folder of the user's, not the project's, with the state dir relative to it.
    state_dir = tmp_path / "state"
    env = base_env(JOBCTL_DATABASE_URL=database_url, JOBCTL_WORK_POOL="jobctl-up-test")
    up = Child(
        [JOBCTL, "up", "--no-demo", "--state-dir", "state", "--status-every", "2"],
        env=env,
        log_path=tmp_path / "up.log",
        cwd=tmp_path,
    )
    try:
        ui = wait_for(
            lambda: re.search(r"Prefect UI: http://127\.0\.0\.1:(\d+)", up.log()) or up.exited(),
            timeout_s=240,
            what="jobctl up ready",
        )
        port = int(ui.group(1))
        hint = f"in another terminal: export PREFECT_API_URL=http://127.0.0.1:{port}/api"
        wait_for(lambda: hint in up.log(), timeout_s=10, what="the PREFECT_API_URL line")
        # The first status line already knows the first sync.
        status = wait_for(
            lambda: re.search(r"\| last sync: ([^|]*)\|", up.log()), timeout_s=30, what="status"
        )
        assert "sync applied" in status.group(1), status.group(0)
        # prefect.yaml's static flows, deployed into the configured pool, run in the project.
        # Named after the pool: another stack on the same server keeps its own.
        for name in ("sync-schedules/every-minute", "purge-history/daily"):
            name = f"{name}-jobctl-up-test"
            deployment = httpx.get(f"http://127.0.0.1:{port}/api/deployments/name/{name}").json()
            assert deployment["work_pool_name"] == "jobctl-up-test", deployment
            (pull,) = deployment["pull_steps"]
            assert pull["prefect.deployments.steps.set_working_directory"] == {
                "directory": str(stack_module.PROJECT_DIR)
            }

        second = subprocess.run(
            [JOBCTL, "up", "--no-demo", "--state-dir", str(state_dir)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 1
        assert "already running" in second.stderr

        # The every-minute row runs on the worker and lands in history.
        wait_for(
            lambda: [
                a for a in repo.list_history(HistoryFilter(schedule_id=row.id))
                if a.status is JobStatus.SUCCESS
            ],
            timeout_s=180,
            interval_s=2,
            what="a scheduled run recorded as SUCCESS",
        )  # fmt: skip
        wait_for(
            lambda: repo.list_history(
                HistoryFilter(schedule_id=long_run.id, status=JobStatus.PROCESSING)
            ),
            timeout_s=120,
            interval_s=1,
            what="the long run in flight",
        )
        # And a run of the next minute, which the worker starts early (prefetch) and which,
        # once started, waits for its time: on SIGINT the worker waits for it, and when the
        # worker is killed it lives on in a session of its own.
        first_seen: dict[int, float] = {}

        def flow_processes_up_for_10_s() -> int:
            now = time.monotonic()
            engines = set(flow_processes(up.pid))
            for pid in engines:
                first_seen.setdefault(pid, now)
            return sum(now - first_seen[pid] >= 10 for pid in engines)

        wait_for(
            lambda: flow_processes_up_for_10_s() >= 2,
            timeout_s=90,
            interval_s=1,
            what="a prefetched run waiting beside the long one",
        )
        processes = descendants(up.pid)
        children = [pid for pid, _ in processes]
        assert len(children) >= 3  # the server, the worker and a flow run at least
        worker = next(pid for pid, command in processes if "worker start" in command)
        tuning = _environ(worker)
        assert tuning["PREFECT_WORKER_QUERY_SECONDS"] == "2"
        assert tuning["PREFECT_WORKER_PREFETCH_SECONDS"] == "40"

        up.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert up.process.wait(timeout=90) == 0, up.log()[-3000:]
    finally:
        up.stop()

    assert "stopped" in up.log()
    assert [pid for pid in children if alive(pid)] == []
    assert not _port_in_use(port)
    assert (state_dir / "prefect").is_dir()  # the local server's data, in the state dir


# A child that ignores SIGINT, as Prefect's worker does while a prefetched run waits, and
# that started a process in a session of its own, as the worker starts each flow run.
WORKER_LIKE = """
import signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
run = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                       start_new_session=True)
print(run.pid, flush=True)
time.sleep(600)
"""


def test_stopping_a_child_ends_the_processes_it_started_in_sessions_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack_module, "STOP_TIMEOUT_S", 2)
    stack = stack_module.Stack(settings=Settings(), state_dir=tmp_path)
    child = stack.spawn("worker", [sys.executable, "-c", WORKER_LIKE], dict(os.environ))
    run_pid = int(wait_for(lambda: (tmp_path / "worker.log").read_text().strip(), timeout_s=30))
    assert alive(run_pid)

    stack.stop()

    assert not child.alive()
    assert not alive(run_pid)


# A stand-in for `jobctl up`: a stack whose child would outlive it without a parent-death
# signal (the child runs in a session of its own, as the server and the worker do).
UP_LIKE = """
import os, sys, time
from pathlib import Path
from jobctl.settings import Settings
from jobctl.cli.stack import Stack
stack = Stack(settings=Settings(), state_dir=Path(sys.argv[1]))
child = stack.spawn("worker", [sys.executable, "-c", "import time; time.sleep(600)"],
                    dict(os.environ))
print(child.process.pid, flush=True)
time.sleep(600)
"""


def test_the_children_of_a_killed_up_die_with_it(tmp_path: Path) -> None:
    up = Child(
        [sys.executable, "-c", UP_LIKE, str(tmp_path)],
        env=base_env(),
        log_path=tmp_path / "up.log",
    )
    try:
        child_pid = int(wait_for(lambda: up.log().strip(), timeout_s=60, what="the child"))
        assert alive(child_pid)

        up.process.kill()  # SIGKILL: no handler, no finally
        up.process.wait(timeout=10)

        wait_for(lambda: not alive(child_pid), timeout_s=10, what="the child's death")
    finally:
        up.stop()


# A stand-in for the stack under the guardian of `jobctl up`: it starts a process in a
# session of its own (as the worker starts a flow run) and ends it on SIGTERM.
GUARDED_STACK = """
import signal, subprocess, sys, time
run = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                       start_new_session=True)
print(run.pid, flush=True)
def stop(*_):
    run.kill()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
time.sleep(600)
"""
GUARDIAN = (
    "import os, sys\n"
    "from jobctl import processes\n"
    "sys.exit(processes.run_guarded([sys.executable, '-c', sys.argv[1]], dict(os.environ)))\n"
)


@pytest.mark.parametrize("killed", ["the stack", "the guardian"])
def test_nothing_outlives_a_guarded_stack_whichever_process_is_killed(
    killed: str, tmp_path: Path
) -> None:
    guardian = Child(
        [sys.executable, "-c", GUARDIAN, GUARDED_STACK], env=base_env(), log_path=tmp_path / "log"
    )
    try:
        run_pid = int(wait_for(lambda: guardian.log().strip(), timeout_s=60, what="the run"))
        (stack_pid, _), *_ = descendants(guardian.pid)
        assert alive(run_pid)

        os.kill(stack_pid if killed == "the stack" else guardian.pid, signal.SIGKILL)

        wait_for(lambda: not alive(run_pid), timeout_s=15, what="the run's end")
        wait_for(lambda: not alive(stack_pid), timeout_s=15, what="the stack's end")
        if killed == "the stack":  # the guardian says so, as a shell would
            assert guardian.process.wait(timeout=15) == 128 + signal.SIGKILL
    finally:
        guardian.stop()


ENDINGS = ["SIGHUP to its group", "SIGTERM", "stdout closed", "SIGKILL of the stack"]


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)
@pytest.mark.usefixtures("prefect_server")
def test_up_stops_every_child_on_a_closed_terminal_or_sigterm(
    ending: str, database_url: str, repo: Repository, work_pool_name: str, tmp_path: Path
) -> None:
    """As when the terminal of `jobctl up | tee up.log` is closed: the terminal's SIGHUP, or
    tee gone first and up's next line written into a closed pipe; or a service manager's
    SIGTERM (after the worker died once and up started another); or the stack's process
    killed outright while a flow run is in flight. Whichever, no process is left."""
    from prefect.settings import PREFECT_API_URL

    env = base_env(
        JOBCTL_DATABASE_URL=database_url,
        JOBCTL_WORK_POOL=work_pool_name,
        PREFECT_API_URL=PREFECT_API_URL.value(),
    )
    log_path = tmp_path / "up.log"
    up = subprocess.Popen(
        [JOBCTL, "up", "--no-demo", "--state-dir", str(tmp_path / "state"), "--status-every", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log_path.open("wb"),
        start_new_session=True,
    )
    assert up.stdout is not None
    seen = b""
    try:
        while b"Prefect UI:" not in seen:
            line = up.stdout.readline()
            assert line, f"up ended early:\n{log_path.read_text()}"
            seen += line
        worker = wait_for(
            lambda: [pid for pid, command in descendants(up.pid) if "worker start" in command],
            timeout_s=30,
            what="the worker",
        )

        if ending == "SIGTERM":  # first, the worker dies: up says so and starts another
            os.kill(worker[0], signal.SIGKILL)
            while b"restarting it" not in seen:
                line = up.stdout.readline()
                assert line, f"up ended early:\n{log_path.read_text()}"
                seen += line
            worker += wait_for(
                lambda: [
                    pid
                    for pid, command in descendants(up.pid)
                    if "worker start" in command and pid not in worker
                ],
                timeout_s=30,
                what="a new worker",
            )

        if ending == "SIGKILL of the stack":
            subprocess.run(
                [JOBCTL, "call", "sleep", "--param", "600", "--no-wait"],
                env=env, check=True, capture_output=True, timeout=120,
            )  # fmt: skip
            wait_for(
                lambda: repo.list_history(HistoryFilter(status=JobStatus.PROCESSING)),
                timeout_s=120,
                what="a flow run in flight",
            )
            everything = [pid for pid, _ in descendants(up.pid)]
            stack = next(pid for pid, cmd in descendants(up.pid) if "jobctl.cli up" in cmd)
            os.kill(stack, signal.SIGKILL)
            assert up.wait(timeout=90) == 128 + signal.SIGKILL  # as a shell reports it
            wait_for(
                lambda: [pid for pid in everything if alive(pid)] == [],
                timeout_s=30,
                what="every process of the stack gone",
            )
            return
        if ending == "stdout closed":
            up.stdout.close()
        elif ending == "SIGTERM":
            up.send_signal(signal.SIGTERM)
        else:
            os.killpg(up.pid, signal.SIGHUP)
        assert up.wait(timeout=90) == 0, log_path.read_text()[-3000:]
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(timeout=30)

    assert [pid for pid in worker if alive(pid)] == []
    if ending != "stdout closed":
        assert b"stopped" in up.stdout.read()
