"""The ``jobctl-warm`` worker type: what is its own (the template), on real runs.

Behaviour shared with Prefect's process worker (states, retries, timeouts, cancellation,
crashes, history, a dead worker) is tested on both worker types where it is tested
(``ON_BOTH_WORKER_TYPES`` and the pairs of ``test_history.py``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import WorkPool
from prefect.states import Cancelling, Scheduled
from prefect.workers.process import ProcessWorker

import jobs
from jobctl.processes import descendants
from tests.conftest import ScheduleFactory
from tests.e2e.test_history import _attempts
from tests.e2e.test_runs import NEVER_DUE, _read_run, _run_now, _wait_final
from tests.fixtures.prefect import (
    ON_BOTH_WORKER_TYPES,
    PREFECT_BIN,
    WARM,
    PrefectServer,
    WorkerFactory,
)
from tests.fixtures.processes import Child, base_env, flow_processes, wait_for
from tests.fixtures.sync import SyncTarget

JOBS_DIR = Path(jobs.__file__).parent
POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True)


def _template_pid(worker: Child) -> int:
    """The worker's template: its child process that runs multiprocessing's forkserver."""
    [pid] = [pid for pid, cmdline in descendants(worker.pid) if "forkserver" in cmdline
             and _parent(pid) == worker.pid]  # fmt: skip
    return pid


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def test_the_template_holds_no_thread_after_its_preload() -> None:
    """Only a process without threads can be forked safely."""
    code = (
        "import threading, jobctl_warm.preload, sys; "
        "sys.modules['flows.registered']; "
        "print(threading.active_count())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "1", done.stdout + done.stderr
    assert "could not import" not in done.stderr, done.stderr


@POSTGRES
def test_a_dead_template_is_rebuilt_by_the_next_run_and_the_worker_says_so(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    row = sync_target.repository.add_schedule(schedule_factory(cron=NEVER_DUE, param=["a"]))
    sync_target.sync()
    worker = start_worker(sync_target.settings.work_pool, database_url=database_url, type=WARM)
    first = _wait_final(_run_now(sync_target, row.id))
    assert first.state is not None and first.state.is_completed()
    template = _template_pid(worker)

    os.kill(template, signal.SIGKILL)
    second = _wait_final(_run_now(sync_target, row.id))

    assert second.state is not None and second.state.is_completed(), worker.log()[-3000:]
    assert _template_pid(worker) != template
    assert f"the warm template (pid {template}) had died; rebuilt it" in worker.log()


@POSTGRES
def test_a_run_survives_the_death_of_the_template_that_forked_it(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, job_name="sleep", param=4, timeout_ms=0, max_retries=0)
    )
    sync_target.sync()
    worker = start_worker(sync_target.settings.work_pool, database_url=database_url, type=WARM)
    run_id = _run_now(sync_target, row.id)
    wait_for(lambda: _read_run(run_id).state.is_running(), timeout_s=60, what="run running")  # type: ignore[union-attr]

    os.kill(_template_pid(worker), signal.SIGKILL)
    run = _wait_final(run_id)

    assert run.state is not None and run.state.is_completed(), worker.log()[-3000:]


def _schedule_in(deployment_id: UUID, seconds: float) -> UUID:
    async def create() -> UUID:
        async with get_client() as client:
            at = datetime.now(UTC) + timedelta(seconds=seconds)
            run = await client.create_flow_run_from_deployment(
                deployment_id, state=Scheduled(scheduled_time=at)
            )
            return run.id

    return asyncio.run(create())


@POSTGRES
@ON_BOTH_WORKER_TYPES
def test_a_prefetched_run_cancelled_before_it_starts_ends_cancelled_and_its_process_gone(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    row = sync_target.repository.add_schedule(schedule_factory(cron=NEVER_DUE, param=["a"]))
    sync_target.sync()
    start_worker(
        sync_target.settings.work_pool,
        database_url=database_url,
        PREFECT_WORKER_PREFETCH_SECONDS="60",
    )
    run_id = _schedule_in(sync_target.deployments()[row.id].id, 45)
    pid = int(wait_for(lambda: _read_run(run_id).infrastructure_pid, timeout_s=40, what="pid"))

    async def cancel() -> None:
        async with get_client() as client:
            await client.set_flow_run_state(run_id, Cancelling(message="cancelled by a test"))

    asyncio.run(cancel())
    run = _wait_final(run_id, timeout_s=40)

    assert run.state is not None and run.state.is_cancelled(), run.state
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout_s=30, what="the process gone")


@POSTGRES
def test_a_changed_job_runs_its_new_code_after_the_template_is_renewed(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
    tmp_path: Path,
) -> None:
    """``JOBCTL_WORKER_RELOAD`` (what ``jobctl up`` sets): a file under ``jobs/`` edited
    while the worker runs; the next run runs the edited code. The jobs package is a copy
    put first on the worker's ``PYTHONPATH``."""
    shutil.copytree(JOBS_DIR, tmp_path / "jobs", ignore=shutil.ignore_patterns("__pycache__"))
    examples = tmp_path / "jobs" / "examples.py"
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, param=["a"], max_retries=0)
    )
    sync_target.sync()
    worker = start_worker(
        sync_target.settings.work_pool,
        database_url=database_url,
        type=WARM,
        PYTHONPATH=str(tmp_path),
        JOBCTL_WORKER_RELOAD="true",
    )
    before = _wait_final(_run_now(sync_target, row.id))
    assert before.state is not None and before.state.is_completed(), worker.log()[-3000:]
    wait_for(lambda: "watching" in worker.log(), timeout_s=30, what="the watcher on")

    signature = "def process_data(param: list[str] | None, user: str) -> dict[str, Any]:\n"
    source = examples.read_text()
    assert signature in source
    examples.write_text(
        source.replace(signature, signature + '    raise RuntimeError("version 2")\n')
    )
    wait_for(lambda: "new warm template ready" in worker.log(), timeout_s=60, what="a new template")
    after = _wait_final(_run_now(sync_target, row.id))

    assert after.state is not None and after.state.is_failed(), after.state
    [attempt] = _attempts(sync_target.repository, after.id)
    assert attempt.error is not None and attempt.error.startswith("RuntimeError: version 2")


def _log_messages(run_id: UUID) -> list[str]:
    async def read() -> list[str]:
        async with get_client() as client:
            logs = await client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200
            )
            return [log.message for log in logs]

    return asyncio.run(read())


@POSTGRES
@ON_BOTH_WORKER_TYPES
def test_a_runs_logs_reach_prefect_and_its_infrastructure_pid_is_its_flow_process(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, job_name="sleep", param=5, timeout_ms=0, max_retries=0)
    )
    sync_target.sync()
    worker = start_worker(sync_target.settings.work_pool, database_url=database_url)
    run_id = _run_now(sync_target, row.id)
    wait_for(lambda: _read_run(run_id).state.is_running(), timeout_s=60, what="run running")  # type: ignore[union-attr]

    pid = int(_read_run(run_id).infrastructure_pid or 0)
    assert pid in flow_processes(worker.pid)
    run = _wait_final(run_id)

    assert run.state is not None and run.state.is_completed()
    wait_for(
        lambda: any("Finished in state Completed" in m for m in _log_messages(run_id)),
        timeout_s=30,
        what="the run's last log line in Prefect",
    )


def test_the_worker_type_is_found_by_prefects_cli(prefect_server: PrefectServer) -> None:
    """``prefect work-pool create --type jobctl-warm`` finds the type through the
    ``prefect.collections`` entry point; the pool takes the process worker's job template."""
    pool = f"jobctl-warm-cli-{uuid.uuid4().hex[:8]}"
    env = base_env(PREFECT_API_URL=prefect_server.api_url)
    created = subprocess.run(
        [str(PREFECT_BIN), "work-pool", "create", pool, "--type", WARM],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr

    async def read() -> WorkPool:
        async with get_client() as client:
            return await client.read_work_pool(pool)

    read_back = asyncio.run(read())
    assert read_back.type == WARM
    assert read_back.base_job_template == ProcessWorker.get_default_base_job_template()


@POSTGRES
def test_a_run_with_its_own_command_starts_that_command(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    """The ``command`` job variable is honoured as on the process worker: not forked."""
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, job_name="sleep", param=3, timeout_ms=0, max_retries=0)
    )
    sync_target.sync()
    worker = start_worker(sync_target.settings.work_pool, database_url=database_url, type=WARM)

    deployment_id = sync_target.deployments()[row.id].id

    async def create() -> UUID:
        async with get_client() as client:
            run = await client.create_flow_run_from_deployment(
                deployment_id, job_variables={"command": f"{sys.executable} -m prefect.engine"}
            )
            return run.id

    run_id = asyncio.run(create())
    wait_for(lambda: _read_run(run_id).state.is_running(), timeout_s=90, what="run running")  # type: ignore[union-attr]
    pid = int(_read_run(run_id).infrastructure_pid or 0)
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        assert b"prefect.engine" in cmdline.read()
    run = _wait_final(run_id)

    assert run.state is not None and run.state.is_completed(), worker.log()[-3000:]
