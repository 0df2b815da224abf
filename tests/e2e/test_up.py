"""`jobctl up` runs the whole system, refuses to start twice, and stops every child."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jobctl.models import JobStatus
from jobctl.records import HistoryFilter
from jobctl.repository import Repository
from tests.conftest import ScheduleFactory
from tests.fixtures.processes import Child, base_env, descendants, wait_for

JOBCTL = str(Path(sys.executable).with_name("jobctl"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


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
    state_dir = tmp_path / "state"
    env = base_env(JOBCTL_DATABASE_URL=database_url, JOBCTL_WORK_POOL="jobctl-up-test")
    up = Child(
        [JOBCTL, "up", "--no-demo", "--state-dir", str(state_dir), "--status-every", "2"],
        env=env,
        log_path=tmp_path / "up.log",
    )
    try:
        ui = wait_for(
            lambda: re.search(r"Prefect UI: http://127\.0\.0\.1:(\d+)", up.log()),
            timeout_s=240,
            what="jobctl up ready",
        )
        port = int(ui.group(1))

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
        processes = descendants(up.pid)
        children = [pid for pid, _ in processes]
        assert len(children) >= 2  # the server and the worker at least
        worker = next(pid for pid, command in processes if "worker start" in command)
        tuning = _environ(worker)
        assert tuning["PREFECT_WORKER_QUERY_SECONDS"] == "2"
        assert tuning["PREFECT_WORKER_PREFETCH_SECONDS"] == "40"

        up.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert up.process.wait(timeout=90) == 0, up.log()[-3000:]
    finally:
        up.stop()

    assert "stopped" in up.log()
    assert [pid for pid in children if _alive(pid)] == []
    assert not _port_in_use(port)
