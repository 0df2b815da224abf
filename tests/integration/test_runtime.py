"""``jobctl.runtime.scheduled_time()`` in flow runs of a real Prefect server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from prefect import flow
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from flows import registered
from jobctl import runtime
from jobctl.models import JobStatus
from jobctl.policy import RunPolicy
from jobctl.prefect import manual_runs
from jobctl.records import HistoryFilter
from jobctl.repository import Repository

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_outside_a_run_there_is_no_scheduled_time() -> None:
    with pytest.raises(runtime.NotInARun, match="only known inside a job's flow run"):
        runtime.scheduled_time()


def test_a_retry_sees_the_scheduled_time_of_its_first_attempt() -> None:
    seen: list[datetime] = []

    @flow(retries=1, retry_delay_seconds=1, persist_result=False)
    def flaky() -> None:
        seen.append(runtime.scheduled_time())
        if len(seen) == 1:
            raise RuntimeError("first attempt fails")

    before = datetime.now(UTC)
    flaky()

    assert len(seen) == 2
    assert seen[0] == seen[1]
    assert before <= seen[0] <= datetime.now(UTC)
    assert seen[0].tzinfo is UTC


@pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)
def test_a_manual_run_is_scheduled_for_its_call(repo: Repository) -> None:
    registered.recorder.use_repository(repo)
    before = datetime.now(UTC)

    outcome = manual_runs.run_here("dailyReport", {"timezone": "Asia/Tokyo"}, "tester", repo)

    assert outcome.status == "SUCCESS", outcome.error
    scheduled = datetime.fromisoformat(outcome.result["scheduledFor"])
    assert before <= scheduled <= datetime.now(UTC)
    yesterday_in_tokyo = scheduled.astimezone(ZoneInfo("Asia/Tokyo")).date() - timedelta(days=1)
    assert outcome.result["day"] == yesterday_in_tokyo.isoformat()
    assert outcome.result["user"] == "tester"


@pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)
def test_a_run_sending_heartbeats_ends_with_its_job_inside_its_timeout(repo: Repository) -> None:
    """Our deployments turn Prefect's flow-run heartbeats on (the zombie automation). A
    0.3 s job under a 1 s timeout completes: the heartbeat thread no longer holds the end
    of the run (inside its timeout) back to the next whole second."""
    registered.recorder.use_repository(repo)
    sleep = registered.job_flows.flow("sleep", RunPolicy(timeout_s=1.0))

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        state = sleep(0.3, return_state=True)

    assert state.is_completed(), state.message
    (attempt,) = repo.list_history(HistoryFilter(job_name="sleep"))
    assert attempt.status is JobStatus.SUCCESS
