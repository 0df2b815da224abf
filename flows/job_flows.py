"""Each registered job wrapped as a Prefect flow named after the job.

The flow's parameters mirror the job's (``param`` typed as the job types it, and ``user``)
so the Prefect UI shows a form. A row's run policy, when the flow process carries one, is
applied with ``with_options`` before the engine reads it: ``JobFlows.flow`` builds the flow
for the policy it is given, at the time the engine asks for it (a flow process forked from
a warm template was not started with the row's environment).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from prefect import Flow
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.states import Cancelled

from flows import history
from flows.history import HistoryRecorder
from flows.maintenance_guard import skipped_for_inactive_row, skipped_for_maintenance
from jobctl.models import JobStatus
from jobctl.policy import RunPolicy
from jobctl.prefect.gateway import in_flow
from jobctl.registry import SYSTEM_USER, Job


def _apply_backoff(policy: RunPolicy) -> None:
    """Set this attempt's retry delay on the run, where the server reads it on failure.

    A flow's ``retry_delay_seconds`` is one number; exponential backoff changes it per
    attempt through the run's ``empirical_policy``.
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    run = context.flow_run
    attempt = max(run.run_count, 1)
    if attempt > policy.retries:
        return
    delay = policy.retry_delay_before(attempt)
    if run.empirical_policy.retry_delay == delay:
        return
    empirical = run.empirical_policy.model_copy(update={"retry_delay": delay})
    in_flow.set_run_policy(run.id, empirical)
    run.empirical_policy = empirical


SKIPPED_STATE_NAME = "Skipped"


def _misfire(policy: RunPolicy | None) -> State | None:
    """A Cancelled "Skipped" state if this scheduled run started too late and a later one
    is due.

    After workers were down, Prefect would run every missed run at once. A run later than
    the grace is skipped unless it is the most recent due run of its deployment, which
    runs: catch up once.
    """
    context = FlowRunContext.get()
    if policy is None or policy.misfire_grace_s is None or context is None:
        return None
    run = context.flow_run
    # Only runs the scheduler created: a backlog of runs asked for by hand all run.
    if run is None or not run.auto_scheduled or run.run_count > 1 or run.deployment_id is None:
        return None
    if run.expected_start_time is None:
        return None
    now = datetime.now(UTC)
    late_s = (now - run.expected_start_time).total_seconds()
    if late_s <= policy.misfire_grace_s:
        return None
    if not in_flow.later_run_due(run.deployment_id, run.id, run.expected_start_time, now):
        return None
    return Cancelled(
        name=SKIPPED_STATE_NAME,
        message=f"skipped: started {late_s:.0f} s after its scheduled time, past the "
        f"misfire grace of {policy.misfire_grace_s:g} s; a later run of this schedule "
        "catches up",
    )


def _skipped(policy: RunPolicy | None, recorder: HistoryRecorder) -> State | None:
    """Why this run skips itself without running the job, if it does."""
    return (
        _misfire(policy) or skipped_for_maintenance(recorder) or skipped_for_inactive_row(recorder)
    )


def _signature(job: Job) -> inspect.Signature:
    param = job.param_parameter
    return inspect.Signature(
        [
            inspect.Parameter(
                "param",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=param.annotation,
                default=param.default,
            ),
            inspect.Parameter(
                "user", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str, default=SYSTEM_USER
            ),
        ],
        return_annotation=inspect.signature(job.fn).return_annotation,
    )


def _timeout_error(policy: RunPolicy | None) -> str:
    limit = f" of {policy.timeout_s:g} s" if policy and policy.timeout_s else ""
    return f"timed out: the attempt exceeded its timeout{limit}"


class _Attempt:
    """Records one attempt of the running flow: PROCESSING now, its outcome at the end."""

    def __init__(self, recorder: HistoryRecorder, job: Job, param: Any) -> None:
        self.recorder = recorder
        self.key = history.current_attempt(job.name, param)
        if self.key is not None:
            recorder.started(self.key)

    def succeeded(self) -> None:
        if self.key is not None:
            self.recorder.finished(self.key, JobStatus.SUCCESS)

    def failed(self, error: str) -> None:
        if self.key is not None:
            self.recorder.finished(self.key, JobStatus.FAILED, error)


@contextlib.contextmanager
def _recording(
    attempt: _Attempt, policy: RunPolicy | None, *, entered: float, is_async: bool
) -> Iterator[None]:
    """The attempt's outcome, whichever way the job's body ends. ``entered``: when the
    flow function was called, as close as the body gets to the start of Prefect's timeout
    (the misfire check and the history write come after it)."""
    try:
        yield
    except asyncio.CancelledError:
        # Prefect enforces a flow's timeout by raising CancelledError in its body: a sync
        # body sees it for nothing else; an async one is also cancelled for other reasons
        # (closed by the on_cancellation hook), so there the time it ran decides.
        timeout_s = policy.timeout_s if policy else None
        ran_s = time.monotonic() - entered
        if timeout_s and (not is_async or ran_s >= timeout_s * 0.99):
            attempt.failed(_timeout_error(policy))
        raise
    except Exception as exc:
        attempt.failed(history.describe_exception(exc))
        raise
    attempt.succeeded()


def build_flow(
    job: Job, policy: RunPolicy | None, module: str, recorder: HistoryRecorder
) -> Flow[..., Any]:
    """The flow of ``job``, found in ``module`` under the job's name, recording history."""
    exponential = policy is not None and policy.backoff == "exponential" and policy.retries > 0

    def begin(param: Any) -> _Attempt:  # after the misfire check: a skipped run has no row
        if exponential:
            assert policy is not None
            _apply_backoff(policy)
        return _Attempt(recorder, job, param)

    if job.is_async:

        async def run_async(param: Any, user: str = SYSTEM_USER) -> Any:
            entered = time.monotonic()
            if (skipped := _skipped(policy, recorder)) is not None:
                return skipped
            with _recording(begin(param), policy, entered=entered, is_async=True):
                return await job.fn(param, user)

        body: Any = run_async
    else:

        def run_sync(param: Any, user: str = SYSTEM_USER) -> Any:
            entered = time.monotonic()
            if (skipped := _skipped(policy, recorder)) is not None:
                return skipped
            with _recording(begin(param), policy, entered=entered, is_async=False):
                return job.fn(param, user)

        body = run_sync

    body.__name__ = job.name
    body.__qualname__ = job.name
    body.__doc__ = job.fn.__doc__
    body.__signature__ = _signature(job)
    body.__module__ = module
    flow: Flow[..., Any] = Flow(
        body,
        name=job.name,
        description=job.description,
        on_failure=[recorder.on_ended_elsewhere],
        on_crashed=[recorder.on_ended_elsewhere],
        on_cancellation=[recorder.on_ended_elsewhere],
    )
    if policy is None:
        return flow
    return flow.with_options(
        retries=policy.retries,
        retry_delay_seconds=policy.retry_delay_before(1),
        timeout_seconds=policy.timeout_s,
    )


class JobFlows:
    """The flow of every registered job, built for a run policy when it is asked for.

    Flows without a policy (manual runs, the UI's form) and each (job, policy) pair are
    built once per process.
    """

    def __init__(self, jobs: Mapping[str, Job], module: str, recorder: HistoryRecorder) -> None:
        self.jobs = dict(jobs)
        self.module = module
        self.recorder = recorder
        self._built: dict[tuple[str, RunPolicy | None], Flow[..., Any]] = {}

    def __contains__(self, job_name: object) -> bool:
        return job_name in self.jobs

    def flow(self, job_name: str, policy: RunPolicy | None = None) -> Flow[..., Any]:
        """Raises ``KeyError`` for a name that is not a registered job."""
        key = (job_name, policy)
        if key not in self._built:
            self._built[key] = build_flow(self.jobs[job_name], policy, self.module, self.recorder)
        return self._built[key]

    def policy_free(self) -> dict[str, Flow[..., Any]]:
        return {name: self.flow(name) for name in self.jobs}
