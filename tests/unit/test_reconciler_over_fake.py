"""The history reconciler's logic over the in-memory Prefect: which attempts it closes,
backfills and retries, and what it asks of Prefect.

What only a real server and worker show (a killed worker's run marked Crashed by the
zombie automation, a retried run's next attempt) stays in tests/e2e.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from prefect.client.schemas.objects import State, StateType

from deployments.spec import HEARTBEAT_ENV
from jobctl import run_origins
from jobctl.models import JobStatus
from jobctl.policy import POLICY_ENV, SCHEDULE_ID_ENV, RunPolicy
from jobctl.prefect import reconciler
from jobctl.records import Attempt, HistoryFilter
from jobctl.repository import Repository
from tests.fixtures.fake_prefect import FakeDeployment, FakePrefect
from tests.fixtures.sqlite_copy import sqlite_repository

POOL = "fake-pool"
JOB = "processData"
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[Repository]:
    yield from sqlite_repository(tmp_path)


@pytest.fixture
def fake() -> FakePrefect:
    return FakePrefect()


def _at(minutes_ago: float) -> datetime:
    return NOW - timedelta(minutes=minutes_ago)


def _state(
    kind: StateType, minutes_ago: float, name: str | None = None, message: str = ""
) -> State:
    return State(type=kind, name=name, timestamp=_at(minutes_ago), message=message or None)


def _deployment(fake: FakePrefect, policy: RunPolicy, schedule_id: str = "row-1") -> FakeDeployment:
    item = FakeDeployment(
        id=uuid4(),
        name=f"schedule-{schedule_id}",
        flow_name=JOB,
        work_pool_name=POOL,
        tags=["jobctl", f"schedule:{schedule_id}"],
        version="v1",
        env={POLICY_ENV: policy.to_env(), SCHEDULE_ID_ENV: schedule_id, HEARTBEAT_ENV: "30"},
    )
    fake.deployments[item.id] = item
    return item


def _reconcile(
    repository: Repository, fake: FakePrefect, now: datetime = NOW
) -> reconciler.ReconcileReport:
    return asyncio.run(
        reconciler.reconcile(
            repository,
            fake,
            [JOB],
            work_pool_name=POOL,
            now=now,
            dead_run_grace=timedelta(seconds=60),
            backfill_window=timedelta(hours=1),
        )
    )


def _history(repository: Repository, run_id: str) -> list[Attempt]:
    rows = repository.list_history(HistoryFilter(flow_run_id=run_id, limit=100))
    return sorted(rows, key=lambda a: a.attempt or 0)


def test_a_processing_attempt_of_a_final_run_takes_the_runs_outcome(
    repository: Repository, fake: FakePrefect
) -> None:
    done = fake.add_run(
        JOB,
        [_state(StateType.RUNNING, 10), _state(StateType.COMPLETED, 9)],
        work_pool_name=POOL,
    )
    failed = fake.add_run(
        JOB,
        [_state(StateType.RUNNING, 10), _state(StateType.FAILED, 9, message="boom")],
        work_pool_name=POOL,
    )
    running = fake.add_run(JOB, [_state(StateType.RUNNING, 1)], work_pool_name=POOL)
    for run in (done, failed, running):
        repository.start_attempt(
            flow_run_id=str(run.id), attempt=1, job_name=JOB, param=None, schedule_id=None
        )

    report = _reconcile(repository, fake)

    assert report.closed == 2 and report.crashed == 0
    assert [a.status for a in _history(repository, str(done.id))] == [JobStatus.SUCCESS]
    (closed,) = _history(repository, str(failed.id))
    assert closed.status is JobStatus.FAILED and closed.error == "failed: boom"
    assert [a.status for a in _history(repository, str(running.id))] == [JobStatus.PROCESSING]
    # Closing from Prefect's record changes nothing in Prefect.
    assert fake.writes == []


def test_an_attempt_whose_run_is_gone_is_failed_as_lost(
    repository: Repository, fake: FakePrefect
) -> None:
    lost = str(uuid4())
    repository.start_attempt(
        flow_run_id=lost, attempt=1, job_name=JOB, param=None, schedule_id=None
    )

    assert _reconcile(repository, fake).closed == 1

    (attempt,) = _history(repository, lost)
    assert attempt.status is JobStatus.FAILED and "lost" in (attempt.error or "")


def test_runs_without_history_are_backfilled_one_row_per_attempt(
    repository: Repository, fake: FakePrefect
) -> None:
    deployment = _deployment(fake, RunPolicy(retries=1))
    retried = fake.add_run(
        JOB,
        [
            _state(StateType.RUNNING, 20),
            _state(StateType.SCHEDULED, 19, name="AwaitingRetry"),
            _state(StateType.RUNNING, 18),
            _state(StateType.FAILED, 17, message="boom again"),
        ],
        work_pool_name=POOL,
        deployment_id=deployment.id,
        parameters={"param": ["a"]},
    )
    skipped = fake.add_run(
        JOB, [_state(StateType.CANCELLED, 5, name="Skipped")], work_pool_name=POOL
    )
    long_ago = fake.add_run(
        JOB,
        [_state(StateType.RUNNING, 200), _state(StateType.COMPLETED, 190)],
        work_pool_name=POOL,
    )

    report = _reconcile(repository, fake)

    assert report.backfilled == 2
    first, second = _history(repository, str(retried.id))
    assert (first.attempt, first.status) == (1, JobStatus.FAILED)
    assert "retried" in (first.error or "")
    assert (second.attempt, second.status) == (2, JobStatus.FAILED)
    assert "boom again" in (second.error or "")
    assert first.schedule_id == "row-1" and first.job_name == JOB and first.param == ["a"]
    assert _history(repository, str(skipped.id)) == []
    assert _history(repository, str(long_ago.id)) == []
    # A second pass finds them recorded.
    assert _reconcile(repository, fake).backfilled == 0


def test_an_attempt_that_ended_before_writing_its_row_is_backfilled_alone(
    repository: Repository, fake: FakePrefect
) -> None:
    """Found by the chaos soak (seed 1): a late run's first attempt timed out during the
    misfire check, before the flow body wrote its row; the second attempt has its row.
    The run had history, so it was never backfilled: attempt 1 stayed without a row."""
    deployment = _deployment(fake, RunPolicy(retries=1))
    run = fake.add_run(
        JOB,
        [
            _state(StateType.RUNNING, 20),
            _state(StateType.SCHEDULED, 19, name="AwaitingRetry"),
            _state(StateType.RUNNING, 18),
            _state(StateType.FAILED, 17, name="TimedOut", message="timed out"),
        ],
        work_pool_name=POOL,
        deployment_id=deployment.id,
    )
    repository.start_attempt(
        flow_run_id=str(run.id), attempt=2, job_name=JOB, param=None, schedule_id="row-1"
    )
    repository.finish_attempt(
        flow_run_id=str(run.id), attempt=2, status=JobStatus.FAILED, job_name=JOB,
        param=None, schedule_id="row-1", error="timed out: the attempt exceeded its timeout",
    )  # fmt: skip

    assert _reconcile(repository, fake).backfilled == 1

    first, second = _history(repository, str(run.id))
    assert (first.attempt, first.status) == (1, JobStatus.FAILED)
    assert "retried" in (first.error or "")
    assert (second.attempt, second.error) == (2, "timed out: the attempt exceeded its timeout")
    assert _reconcile(repository, fake).backfilled == 0


def test_a_run_pending_for_minutes_is_crashed(repository: Repository, fake: FakePrefect) -> None:
    """Found by the chaos soak (seed 18, 30 minutes): runs whose worker died (killed,
    stopped, or exiting on Prefect's 500s during a PostgreSQL restart) after taking them
    stayed Pending for good; 19 of them and one lost Running run held the pool's 20
    slots, and the pool ran nothing more."""
    deployment = _deployment(fake, RunPolicy(retries=0))
    stalled = fake.add_run(
        JOB,
        [_state(StateType.SCHEDULED, 12), _state(StateType.PENDING, 11)],
        work_pool_name=POOL,
        deployment_id=deployment.id,
    )
    taken_now = fake.add_run(
        JOB,
        [_state(StateType.SCHEDULED, 2), _state(StateType.PENDING, 1)],
        work_pool_name=POOL,
        deployment_id=deployment.id,
    )

    report = _reconcile(repository, fake)

    assert report.crashed == 1
    state = fake.runs[stalled.id].state
    assert state is not None and state.type is StateType.CRASHED
    assert "never started" in (state.message or "")
    taken = fake.runs[taken_now.id].state
    assert taken is not None and taken.type is StateType.PENDING
    assert _history(repository, str(stalled.id)) == []  # no attempt ran


def test_a_crashed_run_with_retries_left_is_put_back_awaiting_retry(
    repository: Repository, fake: FakePrefect
) -> None:
    deployment = _deployment(fake, RunPolicy(retries=2, retry_delay_s=30))
    crashed = fake.add_run(
        JOB,
        [_state(StateType.RUNNING, 10), _state(StateType.CRASHED, 9, message="no heartbeat")],
        work_pool_name=POOL,
        deployment_id=deployment.id,
    )
    spent = fake.add_run(
        JOB,
        [_state(StateType.RUNNING, 10), _state(StateType.CRASHED, 9)],
        work_pool_name=POOL,
        deployment_id=deployment.id,
        run_count=3,
    )

    report = _reconcile(repository, fake)

    assert report.retried == 1
    assert [(c.name, c.args) for c in fake.writes] == [
        ("force_run_state", (crashed.id, "AwaitingRetry"))
    ]
    state = fake.runs[crashed.id].state
    assert state is not None and state.state_details.scheduled_time == NOW + timedelta(seconds=30)
    assert fake.runs[spent.id].state is not None
    assert fake.runs[spent.id].state.type is StateType.CRASHED  # type: ignore[union-attr]


def test_a_run_running_past_its_timeout_and_grace_is_marked_crashed(
    repository: Repository, fake: FakePrefect
) -> None:
    deployment = _deployment(fake, RunPolicy(timeout_s=60))
    dead = fake.add_run(
        JOB, [_state(StateType.RUNNING, 5)], work_pool_name=POOL, deployment_id=deployment.id
    )
    young = fake.add_run(
        JOB, [_state(StateType.RUNNING, 1.5)], work_pool_name=POOL, deployment_id=deployment.id
    )
    for run in (dead, young):
        repository.start_attempt(
            flow_run_id=str(run.id), attempt=1, job_name=JOB, param=None, schedule_id="row-1"
        )

    report = _reconcile(repository, fake)

    assert report.crashed == 1
    assert [(c.name, c.args) for c in fake.writes] == [("force_run_state", (dead.id, "Crashed"))]
    (attempt,) = _history(repository, str(dead.id))
    assert attempt.status is JobStatus.FAILED and "crashed" in (attempt.error or "")
    assert [a.status for a in _history(repository, str(young.id))] == [JobStatus.PROCESSING]


def test_a_failed_prefect_read_closes_nothing(repository: Repository, fake: FakePrefect) -> None:
    run = fake.add_run(
        JOB, [_state(StateType.RUNNING, 10), _state(StateType.COMPLETED, 9)], work_pool_name=POOL
    )
    repository.start_attempt(
        flow_run_id=str(run.id), attempt=1, job_name=JOB, param=None, schedule_id=None
    )
    fake.fail_on["read_runs"] = RuntimeError("Prefect answered 500")

    with pytest.raises(RuntimeError):
        _reconcile(repository, fake)

    assert [a.status for a in _history(repository, str(run.id))] == [JobStatus.PROCESSING]


def test_a_backfilled_run_whose_origin_was_not_recorded_gets_it_from_its_tag(
    repository: Repository, fake: FakePrefect
) -> None:
    deployment = _deployment(fake, RunPolicy())
    run = fake.add_run(
        JOB,
        [_state(StateType.RUNNING, 10), _state(StateType.COMPLETED, 9)],
        work_pool_name=POOL,
        deployment_id=deployment.id,
    )
    run.tags = ["backfill:2026-03-28T23:00:00Z/2026-03-29T22:00:00Z"]
    run.expected_start_time = datetime(2026, 3, 29, 1, tzinfo=UTC)  # type: ignore[assignment]

    _reconcile(repository, fake)

    (attempt,) = _history(repository, str(run.id))
    assert attempt.origin == "backfill 2026-03-28T23:00:00Z/2026-03-29T22:00:00Z"
    assert run_origins.logical_times(repository, "row-1") == {str(run.id): run.expected_start_time}


def _recorded(repository: Repository, run_id: str, attempt: int, status: JobStatus) -> None:
    repository.start_attempt(
        flow_run_id=run_id, attempt=attempt, job_name=JOB, param=None, schedule_id="row-1"
    )
    repository.finish_attempt(
        flow_run_id=run_id, attempt=attempt, status=status, job_name=JOB, param=None,
        schedule_id="row-1", error=None if status is JobStatus.SUCCESS else "boom",
    )  # fmt: skip


def test_history_that_disagrees_with_prefects_final_state_is_corrected(
    repository: Repository, fake: FakePrefect
) -> None:
    """Found by the chaos soak (seed 18, 30 minutes, machine load 12): 12 runs of 3-4 s
    jobs with a 5 s timeout ended TimedOut while their attempt said SUCCESS. The timeout
    ran out after the job returned and the body wrote SUCCESS, before Prefect had the run
    Completed; the failure hook found the attempt closed. The same race on a first
    attempt leaves it SUCCESS though the run was retried."""
    deployment = _deployment(fake, RunPolicy(retries=1, timeout_s=5))
    timed_out = fake.add_run(
        JOB,
        [_state(StateType.RUNNING, 10), _state(StateType.FAILED, 9, "TimedOut", "exceeded 5 s")],
        work_pool_name=POOL,
        deployment_id=deployment.id,
    )
    retried = fake.add_run(
        JOB,
        [
            _state(StateType.RUNNING, 20),
            _state(StateType.SCHEDULED, 19, name="AwaitingRetry"),
            _state(StateType.RUNNING, 18),
            _state(StateType.COMPLETED, 17),
        ],
        work_pool_name=POOL,
        deployment_id=deployment.id,
    )
    agreeing = fake.add_run(
        JOB,
        [_state(StateType.RUNNING, 10), _state(StateType.COMPLETED, 9)],
        work_pool_name=POOL,
        deployment_id=deployment.id,
    )
    _recorded(repository, str(timed_out.id), 1, JobStatus.SUCCESS)
    _recorded(repository, str(retried.id), 1, JobStatus.SUCCESS)
    _recorded(repository, str(retried.id), 2, JobStatus.SUCCESS)
    _recorded(repository, str(agreeing.id), 1, JobStatus.SUCCESS)

    report = _reconcile(repository, fake)

    assert report.corrected == 2
    (attempt,) = _history(repository, str(timed_out.id))
    assert attempt.status is JobStatus.FAILED
    assert attempt.error == "timed out: exceeded 5 s"
    first, second = _history(repository, str(retried.id))
    assert (first.status, second.status) == (JobStatus.FAILED, JobStatus.SUCCESS)
    assert "retried" in (first.error or "")
    assert [a.status for a in _history(repository, str(agreeing.id))] == [JobStatus.SUCCESS]
    assert fake.writes == []  # Prefect is the truth: nothing written there
    assert _reconcile(repository, fake).corrected == 0


def test_history_moves_only_to_a_settled_final_state_never_back_and_forth(
    repository: Repository, fake: FakePrefect
) -> None:
    """Chaos soak, seed 18: attempts of retried 5 s-timeout runs went FAILED -> SUCCESS ->
    FAILED within 20 s. Prefect's engine proposed Completed and, 0.9 s later, TimedOut;
    a round read the run while Completed, then the attempt the failure hook had just
    closed FAILED, and "corrected" it to SUCCESS; the next round put it back. A final
    state younger than the settle time is not acted on; once settled it is the last."""
    deployment = _deployment(fake, RunPolicy(retries=1, timeout_s=5))
    second = 1 / 60
    states = [
        _state(StateType.RUNNING, 20 * second),
        _state(StateType.SCHEDULED, 8 * second, name="AwaitingRetry"),
        _state(StateType.RUNNING, 7 * second),
        _state(StateType.COMPLETED, 1 * second),
    ]
    hooked = fake.add_run(JOB, states, work_pool_name=POOL, deployment_id=deployment.id)
    _recorded(repository, str(hooked.id), 1, JobStatus.FAILED)
    _recorded(repository, str(hooked.id), 2, JobStatus.FAILED)  # the hook of the TimedOut
    open_run = fake.add_run(JOB, states, work_pool_name=POOL, deployment_id=deployment.id)
    _recorded(repository, str(open_run.id), 1, JobStatus.FAILED)
    repository.start_attempt(
        flow_run_id=str(open_run.id), attempt=2, job_name=JOB, param=None, schedule_id="row-1"
    )

    early = _reconcile(repository, fake)

    assert (early.corrected, early.closed) == (0, 0)
    assert _history(repository, str(hooked.id))[1].status is JobStatus.FAILED
    assert _history(repository, str(open_run.id))[1].status is JobStatus.PROCESSING

    timed_out = State(type=StateType.FAILED, name="TimedOut", timestamp=NOW, message="exceeded 5 s")
    for run in (hooked, open_run):
        fake.states[run.id].append(timed_out)
        fake.runs[run.id] = fake.runs[run.id].model_copy(update={"state": timed_out})

    assert _reconcile(repository, fake, now=NOW + timedelta(seconds=10)).closed == 0
    settled = _reconcile(repository, fake, now=NOW + timedelta(minutes=1))

    assert (settled.corrected, settled.closed) == (0, 1)
    assert _history(repository, str(hooked.id))[1].status is JobStatus.FAILED
    last = _history(repository, str(open_run.id))[1]
    assert (last.status, last.error) == (JobStatus.FAILED, "timed out: exceeded 5 s")


def test_a_run_without_timeout_silent_for_minutes_is_crashed(
    repository: Repository, fake: FakePrefect
) -> None:
    """Found by the chaos soak (seed 18, 30 minutes): a run without a timeout whose flow
    process was killed stayed Running: the zombie automation did not fire (its events are
    lost while the Prefect server or its database restarts), and nothing else ends such a
    run. Silence: 2 x 60 s (the automation's) + the 60 s dead-run grace = 3 minutes."""
    deployment = _deployment(fake, RunPolicy())
    lost = fake.add_run(
        JOB, [_state(StateType.RUNNING, 10)], work_pool_name=POOL, deployment_id=deployment.id
    )
    alive = fake.add_run(
        JOB, [_state(StateType.RUNNING, 10)], work_pool_name=POOL, deployment_id=deployment.id
    )
    young = fake.add_run(
        JOB, [_state(StateType.RUNNING, 2)], work_pool_name=POOL, deployment_id=deployment.id
    )
    in_the_api = fake.add_run(JOB, [_state(StateType.RUNNING, 10)], work_pool_name=POOL)
    for run in (lost, alive, young, in_the_api):
        repository.start_attempt(
            flow_run_id=str(run.id), attempt=1, job_name=JOB, param=None, schedule_id="row-1"
        )
    fake.heartbeats = {lost.id: _at(4), alive.id: _at(0.5)}

    report = _reconcile(repository, fake)

    assert report.crashed == 1
    # Not asked about: a run this young, and one in a process that sends no heartbeat
    # (call-job runs its job in the API's process, outside any deployment).
    assert [set(c.args[0]) for c in fake.called("read_last_heartbeats")] == [{lost.id, alive.id}]
    assert [(c.name, c.args) for c in fake.writes] == [("force_run_state", (lost.id, "Crashed"))]
    (attempt,) = _history(repository, str(lost.id))
    assert attempt.status is JobStatus.FAILED and "no heartbeat since" in (attempt.error or "")
    for run in (alive, young, in_the_api):
        assert [a.status for a in _history(repository, str(run.id))] == [JobStatus.PROCESSING]
    # Without what tells a live run (the in-memory Prefect has none), nothing is judged.
    assert _reconcile(repository, fake).crashed == 0


def test_a_lost_run_without_history_is_crashed(repository: Repository, fake: FakePrefect) -> None:
    """Found by the chaos soak (seed 18, 30 minutes): PostgreSQL restarted as five runs
    began and their worker died; their flow processes could write no history row, so the
    reconciler, which looked for lost runs through their PROCESSING rows only, never saw
    them, and the zombie automation missed them too: Running for good, each holding a slot
    of the pool. Past its timeout plus the grace (or silent, without a timeout), such a
    run is crashed; its attempt is backfilled once it is Crashed."""
    timed = _deployment(fake, RunPolicy(timeout_s=20), schedule_id="row-1")
    untimed = _deployment(fake, RunPolicy(), schedule_id="row-2")
    past_timeout = fake.add_run(
        JOB, [_state(StateType.RUNNING, 2)], work_pool_name=POOL, deployment_id=timed.id
    )
    within = fake.add_run(
        JOB, [_state(StateType.RUNNING, 1)], work_pool_name=POOL, deployment_id=timed.id
    )
    silent = fake.add_run(
        JOB, [_state(StateType.RUNNING, 7)], work_pool_name=POOL, deployment_id=untimed.id
    )

    report = _reconcile(repository, fake)

    assert report.crashed == 2
    assert sorted(c.args for c in fake.writes) == sorted(
        [(past_timeout.id, "Crashed"), (silent.id, "Crashed")]
    )
    state = fake.runs[within.id].state
    assert state is not None and state.type is StateType.RUNNING


def test_an_in_process_retry_whose_process_died_is_crashed(
    repository: Repository, fake: FakePrefect
) -> None:
    """Found by the chaos soak (seed 18, 30 minutes): a failing row's first attempt failed,
    Prefect put the run AwaitingRetry for its own process to retry in 2 s, and the worker
    died with that process: the run stayed AwaitingRetry for good (no worker takes an
    in-process retry). Such a run waiting past the Pending grace is crashed, then retried
    for the workers."""
    deployment = _deployment(fake, RunPolicy(retries=2, retry_delay_s=2))
    stuck = fake.add_run(
        JOB,
        [
            _state(StateType.RUNNING, 10),
            _state(StateType.SCHEDULED, 9.9, name="AwaitingRetry", message="DemoFailure"),
        ],
        work_pool_name=POOL,
        deployment_id=deployment.id,
    )
    waiting = fake.add_run(
        JOB,
        [
            _state(StateType.RUNNING, 1),
            _state(StateType.SCHEDULED, 0.9, name="AwaitingRetry", message="DemoFailure"),
        ],
        work_pool_name=POOL,
        deployment_id=deployment.id,
    )
    for run, due in ((stuck, _at(9.9)), (waiting, _at(0.9))):
        fake.runs[run.id].empirical_policy.retry_type = "in_process"
        fake.runs[run.id].state.state_details.scheduled_time = due  # type: ignore[union-attr]
        _recorded(repository, str(run.id), 1, JobStatus.FAILED)

    report = _reconcile(repository, fake)

    assert report.crashed == 1
    assert [c.args for c in fake.writes] == [(stuck.id, "Crashed")]
    message = fake.runs[stuck.id].state.message  # type: ignore[union-attr]
    assert "never started" in (message or "")
    state = fake.runs[waiting.id].state
    assert state is not None and state.name == "AwaitingRetry"
