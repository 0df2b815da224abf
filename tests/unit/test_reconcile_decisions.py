"""The history reconciler's decisions, without a database or a server (as the planner's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from prefect.client.schemas.objects import FlowRun, State, StateType

from jobctl.models import JobStatus
from jobctl.policy import RunPolicy
from jobctl.prefect.reconciler import Verdict, decide, retry_after_crash
from jobctl.records import Attempt

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=60)


def attempt(number: int = 1) -> Attempt:
    return Attempt(
        id=1,
        job_name="sleep",
        param=1,
        status=JobStatus.PROCESSING,
        error=None,
        start_at=NOW - timedelta(minutes=5),
        end_at=None,
        flow_run_id=str(uuid4()),
        attempt=number,
    )


def run(
    state_type: StateType, *, name: str | None = None, run_count: int = 1, since_s: float = 0
) -> FlowRun:
    state = State(
        type=state_type, name=name, message="boom", timestamp=NOW - timedelta(seconds=since_s)
    )
    return FlowRun(flow_id=uuid4(), state=state, run_count=run_count)


def judge(the_run: FlowRun | None, policy: RunPolicy | None = None, number: int = 1):
    return decide(attempt(number), the_run, policy, now=NOW, dead_run_grace=GRACE)


def test_an_attempt_whose_run_is_gone_is_lost() -> None:
    assert judge(None) == Verdict(JobStatus.FAILED, "lost: its flow run no longer exists")


def test_an_attempt_a_later_one_followed_failed() -> None:
    verdict = judge(run(StateType.RUNNING, run_count=2), number=1)

    assert verdict == Verdict(JobStatus.FAILED, "failed: a later attempt followed")


@pytest.mark.parametrize(
    ("state_type", "name", "status"),
    [
        (StateType.COMPLETED, None, JobStatus.SUCCESS),
        (StateType.FAILED, "TimedOut", JobStatus.FAILED),
        (StateType.CRASHED, None, JobStatus.FAILED),
        (StateType.CANCELLED, None, JobStatus.FAILED),
    ],
)
def test_an_attempt_of_a_finished_run_takes_its_outcome(state_type, name, status) -> None:
    verdict = judge(run(state_type, name=name, since_s=30))

    assert verdict is not None and verdict.status is status and not verdict.crash_run
    assert (verdict.error is None) is (status is JobStatus.SUCCESS)


def test_an_attempt_of_a_run_that_ended_a_moment_ago_stays_open() -> None:
    """Its flow process may still replace the state (Completed, then TimedOut) and write
    the outcome itself. A crash is closed at once."""
    assert judge(run(StateType.COMPLETED, since_s=29)) is None
    assert judge(run(StateType.FAILED, name="TimedOut", since_s=29)) is None
    crashed = judge(run(StateType.CRASHED, since_s=1))
    assert crashed is not None and crashed.status is JobStatus.FAILED


def test_a_running_attempt_within_its_timeout_and_grace_stays_open() -> None:
    policy = RunPolicy(timeout_s=30)

    assert judge(run(StateType.RUNNING, since_s=89), policy) is None


def test_a_running_attempt_past_its_timeout_and_grace_is_dead_and_its_run_crashed() -> None:
    verdict = judge(run(StateType.RUNNING, since_s=90), RunPolicy(timeout_s=30))

    assert verdict is not None and verdict.crash_run
    assert verdict.status is JobStatus.FAILED
    assert verdict.error is not None and verdict.error.startswith("crashed: still Running 30 s")


@pytest.mark.parametrize("policy", [None, RunPolicy(timeout_s=None)], ids=["none", "no-timeout"])
def test_a_running_attempt_without_a_timeout_is_left_to_heartbeats(policy) -> None:
    assert judge(run(StateType.RUNNING, since_s=86_400), policy) is None


def test_a_crashed_run_with_attempts_left_awaits_its_retry_after_the_rows_delay() -> None:
    policy = RunPolicy(retries=2, retry_delay_s=10, backoff="exponential")

    state = retry_after_crash(run(StateType.CRASHED, run_count=2), policy, NOW)

    assert state is not None and state.name == "AwaitingRetry"
    assert state.state_details.scheduled_time == NOW + timedelta(seconds=20)
    assert state.message == "retrying after a crash (attempt 2 of 3)"


@pytest.mark.parametrize(
    ("policy", "run_count"), [(None, 1), (RunPolicy(retries=1), 2), (RunPolicy(), 1)]
)
def test_a_crashed_run_without_attempts_left_stays_crashed(policy, run_count) -> None:
    assert retry_after_crash(run(StateType.CRASHED, run_count=run_count), policy, NOW) is None
