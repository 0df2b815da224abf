"""The history hooks of a job's flow (``flows.history.HistoryRecorder.on_ended_elsewhere``):
what a crash, a cancellation or a final failure writes, over a SQLite copy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from prefect import Flow
from prefect.client.schemas.objects import FlowRun
from prefect.states import Crashed, Failed

from flows.history import HistoryRecorder
from jobctl.models import JobStatus
from jobctl.records import Attempt, HistoryFilter
from jobctl.repository import Repository
from tests.fixtures.sqlite_copy import sqlite_repository

JOB = "processData"


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[Repository]:
    yield from sqlite_repository(tmp_path)


@pytest.fixture
def recorder(repository: Repository) -> HistoryRecorder:
    recorder = HistoryRecorder()
    recorder.use_repository(repository)
    return recorder


def _flow() -> Flow[..., None]:
    def body() -> None:
        return None

    return Flow(body, name=JOB)


def _history(repository: Repository, run: FlowRun) -> list[Attempt]:
    return repository.list_history(HistoryFilter(flow_run_id=str(run.id), limit=10))


def test_a_run_crashed_before_its_first_attempt_writes_no_attempt(
    repository: Repository, recorder: HistoryRecorder
) -> None:
    """Found by the chaos soak (seed 18, 30 minutes): a run whose worker stopped while it
    was Pending got its crash hook's FAILED row as attempt 1; retried, its real first
    attempt found that row taken (then skipped as a misfire: a skip with an attempt)."""
    run = FlowRun(flow_id=uuid4(), run_count=0)

    recorder.on_ended_elsewhere(_flow(), run, Crashed(message="worker stopped"))

    assert _history(repository, run) == []


def test_a_workers_crash_hook_closes_the_first_attempt_its_process_began(
    repository: Repository, recorder: HistoryRecorder
) -> None:
    """The worker runs the crash hooks with the run as it took it (run_count 0): attempt 1,
    begun by the flow process before it died, is closed all the same."""
    run = FlowRun(flow_id=uuid4(), run_count=0)
    repository.start_attempt(
        flow_run_id=str(run.id), attempt=1, job_name=JOB, param=None, schedule_id=None
    )

    recorder.on_ended_elsewhere(_flow(), run, Crashed(message="exit code -9"))

    (attempt,) = _history(repository, run)
    assert (attempt.status, attempt.error) == (JobStatus.FAILED, "crashed: exit code -9")


def test_a_final_failure_replaces_a_success_the_body_wrote(
    repository: Repository, recorder: HistoryRecorder
) -> None:
    """Found by the chaos soak (seed 18, 30 minutes): a timeout that runs out after the
    job returned ends the run TimedOut; the attempt must not stay SUCCESS. A failure the
    body wrote keeps its own error."""
    timed_out = FlowRun(flow_id=uuid4(), run_count=1)
    failed = FlowRun(flow_id=uuid4(), run_count=1)
    for run, status in ((timed_out, JobStatus.SUCCESS), (failed, JobStatus.FAILED)):
        repository.finish_attempt(
            flow_run_id=str(run.id), attempt=1, status=status, job_name=JOB, param=None,
            schedule_id=None, error="ValueError: bad" if status is JobStatus.FAILED else None,
        )  # fmt: skip

    for run in (timed_out, failed):
        recorder.on_ended_elsewhere(_flow(), run, Failed(name="TimedOut", message="over 5 s"))

    (attempt,) = _history(repository, timed_out)
    assert (attempt.status, attempt.error) == (JobStatus.FAILED, "timed out: over 5 s")
    (kept,) = _history(repository, failed)
    assert (kept.status, kept.error) == (JobStatus.FAILED, "ValueError: bad")
