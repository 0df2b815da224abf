"""Closing what the flow runs could not write themselves, from Prefect's own record.

One pass:
1. a PROCESSING attempt whose run is already final takes the run's real outcome (an
   earlier attempt of a retried run is FAILED: a later one started), once a Completed or
   Failed state has settled (``FINAL_STATE_SETTLE``);
2. a run still Running past its timeout plus a grace, with nobody left to end it (worker
   and flow process both dead), is marked Crashed in Prefect and FAILED here; so is a run
   Pending for minutes (its worker died before starting it), and a run without a timeout
   whose flow process sent no heartbeat for minutes (the zombie automation's fallback);
3. runs of our jobs that ended recently with attempts that have no history (the database
   was down while they ran, or an attempt ended before the flow body wrote its row) are
   backfilled from their state history, one row per missing attempt;
4. a run that crashed (its worker or flow process died, or it outlived its timeout) is
   retried when its row allows another attempt: Prefect retries Failed runs, not Crashed
   ones, so the reconciler puts it back as AwaitingRetry after the row's retry delay.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.states import AwaitingRetry, Crashed

from deployments.spec import HEARTBEAT_ENV, HEARTBEAT_S
from jobctl import backfill_plan, registry, run_origins
from jobctl.models import JobStatus, utcnow
from jobctl.policy import SCHEDULE_ID_ENV, RunPolicy
from jobctl.prefect.gateway import PrefectGateway
from jobctl.prefect.gateway.payloads import ZOMBIE_MISSED_HEARTBEATS
from jobctl.prefect.outcomes import outcome_of
from jobctl.records import Attempt
from jobctl.repository import Repository
from jobctl.settings import Settings

logger = logging.getLogger("jobctl.history")

SKIPPED = "Skipped"  # a run skipped by the misfire policy: it never started the job
# A worker takes a run up to its prefetch (40 s in deploy/env.example) before its time and
# starts it within seconds: a run Pending this long was taken by a worker that is gone.
PENDING_GRACE = timedelta(minutes=5)  # JOBCTL_PENDING_RUN_GRACE_S
FINAL_TYPES = {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}
# A run without a timeout is ended by the zombie automation once its flow process has been
# silent for HEARTBEAT_S * ZOMBIE_MISSED_HEARTBEATS. The reconciler is the fallback when
# the automation did not fire (its events were lost in a Prefect server restart): twice
# that silence, plus the dead-run grace.
SILENCE = timedelta(seconds=2 * HEARTBEAT_S * ZOMBIE_MISSED_HEARTBEATS)
HEARTBEAT_LOOKBACK = timedelta(hours=1)
# A final state its flow process proposed is not always the last: the engine's timeout
# can end a run TimedOut a moment after it proposed Completed (chaos soak, seed 18: 0.9 s
# apart), and the process writes the attempt's outcome in its hooks meanwhile. History is
# closed or corrected from a Completed or Failed state only once it is this old, so it
# moves once, to the run's real end. Crashed and Cancelled runs are acted on at once:
# their process is gone or being ended, and a crashed run is retried without delay.
FINAL_STATE_SETTLE = timedelta(seconds=30)
SETTLING_TYPES = {StateType.COMPLETED, StateType.FAILED}


@dataclass
class ReconcileReport:
    closed: int = 0
    crashed: int = 0
    backfilled: int = 0
    corrected: int = 0
    retried: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"history: {self.closed} attempt(s) closed from Prefect, {self.crashed} dead "
            f"run(s) marked crashed, {self.backfilled} attempt(s) backfilled, "
            f"{self.corrected} corrected from Prefect, {self.retried} crashed run(s) retried"
        )


DeploymentEnvs = dict[UUID, dict[str, str]]


async def _deployment_envs(gateway: PrefectGateway, runs: Iterable[FlowRun]) -> DeploymentEnvs:
    """The environment (policy, schedule id) each run's deployment gives its flow process."""
    return await gateway.read_deployment_envs(
        {run.deployment_id for run in runs if run.deployment_id}
    )


def _env_of(run: FlowRun, envs: DeploymentEnvs) -> dict[str, str]:
    return envs.get(run.deployment_id, {}) if run.deployment_id else {}


def attempts_from_states(states: Iterable[State]) -> list[tuple[datetime, datetime, State]]:
    """(start, end, ending state) of each attempt: each Running state begins one."""
    ordered = sorted(states, key=lambda s: s.timestamp)
    attempts: list[tuple[datetime, datetime, State]] = []
    started: datetime | None = None
    for state in ordered:
        if state.type is StateType.RUNNING:
            started = state.timestamp
        elif started is not None and (state.type in FINAL_TYPES or state.name == "AwaitingRetry"):
            attempts.append((started, state.timestamp, state))
            started = None
    return attempts


@dataclass(frozen=True)
class Verdict:
    """How a PROCESSING attempt ends: its status and error, and whether its run must first
    be marked Crashed in Prefect (it is dead and nobody else will end it)."""

    status: JobStatus
    error: str | None
    crash_run: bool = False


def decide(
    attempt: Attempt,
    run: FlowRun | None,
    policy: RunPolicy | None,
    *,
    now: datetime,
    dead_run_grace: timedelta,
) -> Verdict | None:
    """The verdict on a PROCESSING attempt from its run's record, or None to leave it open.

    A run without a timeout is never judged dead here: Prefect's heartbeats are the tool
    for those. The deadline counts from the current attempt's start (``run.start_time``
    is the first attempt's).
    """
    if run is None:
        return Verdict(JobStatus.FAILED, "lost: its flow run no longer exists")
    if (attempt.attempt or 1) < run.run_count:
        return Verdict(JobStatus.FAILED, "failed: a later attempt followed")
    if run.state is None:
        return None
    if run.state.type in FINAL_TYPES:
        if not _settled(run.state, now):
            return None  # its flow process may still replace the state and write the outcome
        return Verdict(*outcome_of(run.state))
    if run.state.type is not StateType.RUNNING or policy is None or not policy.timeout_s:
        return None
    if now < run.state.timestamp + timedelta(seconds=policy.timeout_s) + dead_run_grace:
        return None
    message = (
        f"crashed: still Running {policy.timeout_s:g} s timeout + "
        f"{dead_run_grace.total_seconds():g} s grace after the attempt started, with nobody "
        "to end it (worker and flow process gone)"
    )
    return Verdict(JobStatus.FAILED, message, crash_run=True)


def retry_after_crash(run: FlowRun, policy: RunPolicy | None, now: datetime) -> State | None:
    """The AwaitingRetry state a crashed run gets when its row allows another attempt.

    The retried run keeps its id and its ``run_count``, so its next attempt is numbered
    after the crashed one and Prefect's own retry limit still counts it.
    """
    if policy is None or run.run_count > policy.retries:
        return None
    delay_s = policy.retry_delay_before(run.run_count)
    return AwaitingRetry(
        scheduled_time=now + timedelta(seconds=delay_s),
        message=f"retrying after a crash (attempt {run.run_count} of {policy.retries + 1})",
    )


async def reconcile(
    repository: Repository,
    gateway: PrefectGateway,
    job_names: list[str],
    *,
    work_pool_name: str,
    now: datetime,
    dead_run_grace: timedelta,
    backfill_window: timedelta,
    pending_grace: timedelta = PENDING_GRACE,
) -> ReconcileReport:
    report = ReconcileReport()
    processing = [a for a in repository.list_processing() if a.flow_run_id]
    runs = await gateway.read_runs({a.flow_run_id for a in processing if a.flow_run_id})
    envs = await _deployment_envs(gateway, runs.values())
    left: dict[tuple[str, int], Attempt] = {}  # PROCESSING attempts no verdict closed
    for attempt in processing:
        assert attempt.flow_run_id is not None
        run = runs.get(attempt.flow_run_id)
        policy = RunPolicy.from_env(_env_of(run, envs)) if run is not None else None
        verdict = decide(attempt, run, policy, now=now, dead_run_grace=dead_run_grace)
        if verdict is None:
            left[(attempt.flow_run_id, attempt.attempt or 1)] = attempt
            continue
        if verdict.crash_run:
            assert run is not None
            await gateway.force_run_state(run.id, Crashed(message=verdict.error))
            report.crashed += 1
        else:
            report.closed += 1
        _close(repository, attempt, verdict.status, verdict.error)
    report.crashed += await _crash_lost(
        repository,
        gateway,
        left,
        job_names,
        work_pool_name,
        now=now,
        dead_run_grace=dead_run_grace,
        pending_grace=pending_grace,
    )
    report.crashed += await _crash_stalled(gateway, job_names, work_pool_name, now, pending_grace)
    since = now - backfill_window
    ended = await _ended_runs(gateway, job_names, work_pool_name, since)
    settled = [run for run in ended if run.state is not None and _settled(run.state, now)]
    report.backfilled = await _backfill(repository, gateway, settled)
    report.corrected = await _correct(repository, gateway, settled)
    report.retried = await _retry_crashed(gateway, ended, now)
    if report.closed or report.crashed or report.backfilled or report.corrected or report.retried:
        logger.info(report.summary())
    return report


async def reconcile_with_settings(
    settings: Settings, repository: Repository, gateway: PrefectGateway
) -> ReconcileReport:
    return await reconcile(
        repository,
        gateway,
        registry.job_names(),
        work_pool_name=settings.work_pool,
        now=datetime.now(UTC),
        dead_run_grace=timedelta(seconds=settings.dead_run_grace_s),
        backfill_window=timedelta(seconds=settings.history_backfill_window_s),
        pending_grace=timedelta(seconds=settings.pending_run_grace_s),
    )


async def _crash_lost(
    repository: Repository,
    gateway: PrefectGateway,
    left: dict[tuple[str, int], Attempt],
    job_names: list[str],
    work_pool_name: str,
    *,
    now: datetime,
    dead_run_grace: timedelta,
    pending_grace: timedelta,
) -> int:
    """Crash the runs in progress in Prefect whose process is gone, history row or not
    (the database may have been down when they started), and fail their open attempt:

    - Running past its timeout plus the dead-run grace;
    - Running without a timeout, in a flow process that sends heartbeats, silent for
      ``SILENCE`` plus the grace: the zombie automation's fallback (its events are lost
      when the Prefect server or its database restarts);
    - AwaitingRetry of an in-process retry (Prefect retries a failed run in its own
      process, and no worker takes such a run) still waiting ``pending_grace`` after its
      time: its process died between two attempts.

    A crashed run with attempts left is then retried for the workers (``_retry_crashed``)."""
    runs = await gateway.read_runs_in_progress(job_names, work_pool_name)
    envs = await _deployment_envs(gateway, runs)
    silence = SILENCE + dead_run_grace
    dead: dict[UUID, str] = {}
    quiet: list[FlowRun] = []
    for run in runs:
        state = run.state
        if state is None:
            continue
        env = _env_of(run, envs)
        policy = RunPolicy.from_env(env) if env else None
        if state.type is StateType.SCHEDULED:
            waited = now - (state.state_details.scheduled_time or state.timestamp)
            in_process = run.empirical_policy.retry_type == "in_process"
            if state.name == "AwaitingRetry" and in_process and waited >= pending_grace:
                dead[run.id] = (
                    f"crashed: its retry was due {waited.total_seconds():.0f} s ago and "
                    "never started (its process died between two attempts)"
                )
        elif state.type is StateType.RUNNING:
            running = now - state.timestamp
            if policy is not None and policy.timeout_s:
                if running >= timedelta(seconds=policy.timeout_s) + dead_run_grace:
                    dead[run.id] = (
                        f"crashed: still Running {policy.timeout_s:g} s timeout + "
                        f"{dead_run_grace.total_seconds():g} s grace after the attempt "
                        "started, with nobody to end it (worker and flow process gone)"
                    )
            elif HEARTBEAT_ENV in env and running >= silence:
                quiet.append(run)
    if quiet:
        last = await gateway.read_last_heartbeats(
            {run.id for run in quiet}, since=now - HEARTBEAT_LOOKBACK
        )
        for run in quiet:
            assert run.state is not None
            seen = max(run.state.timestamp, last.get(run.id, run.state.timestamp))
            if now - seen >= silence:
                dead[run.id] = (
                    f"crashed: no heartbeat since {seen:%H:%M:%S} UTC "
                    f"({silence.total_seconds():g} s without one), and the zombie "
                    "automation did not end it"
                )
    for run in runs:
        message = dead.get(run.id)
        if message is None:
            continue
        await gateway.force_run_state(run.id, Crashed(message=message))
        attempt = left.get((str(run.id), max(run.run_count, 1)))
        if attempt is not None:
            _close(repository, attempt, JobStatus.FAILED, message)
    return len(dead)


def _close(repository: Repository, attempt: Attempt, status: JobStatus, error: str | None) -> None:
    assert attempt.flow_run_id is not None and attempt.attempt is not None
    repository.finish_attempt(
        flow_run_id=attempt.flow_run_id,
        attempt=attempt.attempt,
        status=status,
        job_name=attempt.job_name,
        param=attempt.param,
        schedule_id=attempt.schedule_id,
        error=error,
    )


async def _ended_runs(
    gateway: PrefectGateway, job_names: list[str], work_pool_name: str, since: datetime
) -> list[FlowRun]:
    """Runs of our jobs that ended since ``since`` (skipped ones aside), in our pool only:
    other installations sharing the Prefect server keep their own."""
    return [
        run
        for run in await gateway.read_ended_runs(job_names, work_pool_name, since)
        if run.state and run.state.type in FINAL_TYPES and run.state.name != SKIPPED
    ]


def _settled(state: State, now: datetime) -> bool:
    """Nothing will replace this final state now (``FINAL_STATE_SETTLE``)."""
    return state.type not in SETTLING_TYPES or now - state.timestamp >= FINAL_STATE_SETTLE


async def _crash_stalled(
    gateway: PrefectGateway,
    job_names: list[str],
    work_pool_name: str,
    now: datetime,
    grace: timedelta,
) -> int:
    """Crash the runs Pending for longer than ``grace``: the worker that took them
    died before starting them, and nothing else ends them (Prefect's zombie detection
    watches Running runs); each holds a slot of the pool's concurrency limit meanwhile,
    and enough of them stop the pool. A run with retries left is then retried below."""
    crashed = 0
    for run in await gateway.read_pending_runs(job_names, work_pool_name):
        if run.state is None or now - run.state.timestamp < grace:
            continue
        message = (
            f"crashed: Pending since {run.state.timestamp:%H:%M:%S} UTC and never started "
            "(the worker that took it is gone)"
        )
        await gateway.force_run_state(run.id, Crashed(message=message))
        crashed += 1
    return crashed


async def _retry_crashed(gateway: PrefectGateway, ended: list[FlowRun], now: datetime) -> int:
    """Put crashed runs with attempts left back as AwaitingRetry; returns how many."""
    crashed = [run for run in ended if run.state and run.state.type is StateType.CRASHED]
    envs = await _deployment_envs(gateway, crashed)
    retried = 0
    for run in crashed:
        state = retry_after_crash(run, RunPolicy.from_env(_env_of(run, envs)), now)
        if state is not None:
            await gateway.force_run_state(run.id, state)
            retried += 1
    return retried


async def _backfill(repository: Repository, gateway: PrefectGateway, ended: list[FlowRun]) -> int:
    """Write the attempts of recently ended runs of our jobs that have no history row:
    the whole run (the database was down), or one attempt (it ended before the flow body
    wrote its row, such as a timeout running out during the misfire check)."""
    known = repository.recorded_attempts([str(run.id) for run in ended])
    missing = [run for run in ended if len(known.get(str(run.id), ())) < run.run_count]
    flow_names = await gateway.read_flow_names({run.flow_id for run in missing})
    envs = await _deployment_envs(gateway, missing)
    written = 0
    for run in missing:
        param = (run.parameters or {}).get("param")
        for number, (started, finished, state) in enumerate(
            attempts_from_states(await gateway.read_run_states(run.id)), start=1
        ):
            if number in known.get(str(run.id), ()):
                continue
            status, error = _attempt_outcome(state)
            repository.finish_attempt(
                flow_run_id=str(run.id),
                attempt=number,
                status=status,
                job_name=flow_names.get(run.flow_id, "?"),
                param=_jsonable(param),
                schedule_id=_env_of(run, envs).get(SCHEDULE_ID_ENV),
                error=error,
                start_at=started.astimezone(UTC),
                end_at=finished.astimezone(UTC),
            )
            written += 1
        _record_backfill_origin(repository, run, _env_of(run, envs).get(SCHEDULE_ID_ENV))
    return written


def _disagrees(run: FlowRun, recorded: dict[int, JobStatus]) -> bool:
    """History says otherwise than Prefect: the last attempt's status is not the final
    state's, or an attempt that a later one followed says SUCCESS."""
    if run.state is None or run.run_count < 1:
        return False
    last = recorded.get(run.run_count)
    if last is not None and last is not JobStatus.PROCESSING:
        if last is not outcome_of(run.state)[0]:
            return True
    return any(
        status is JobStatus.SUCCESS for number, status in recorded.items() if number < run.run_count
    )


async def _correct(repository: Repository, gateway: PrefectGateway, ended: list[FlowRun]) -> int:
    """Rewrite the attempts of recently ended runs whose history disagrees with Prefect's
    states: a timeout can end an attempt (TimedOut, or AwaitingRetry) just after the flow
    body wrote SUCCESS, and the failure hooks then find the attempt closed. Prefect's
    record is the truth; only runs whose history disagrees have their states read."""
    known = repository.recorded_attempts([str(run.id) for run in ended])
    wrong = [run for run in ended if _disagrees(run, known.get(str(run.id), {}))]
    if not wrong:
        return 0
    flow_names = await gateway.read_flow_names({run.flow_id for run in wrong})
    envs = await _deployment_envs(gateway, wrong)
    corrected = 0
    for run in wrong:
        assert run.state is not None
        recorded = known.get(str(run.id), {})
        endings: dict[int, tuple[JobStatus, str | None]] = {run.run_count: outcome_of(run.state)}
        attempts = attempts_from_states(await gateway.read_run_states(run.id))
        if len(attempts) == run.run_count:
            for number, (_, _, state) in enumerate(attempts[:-1], start=1):
                endings[number] = _attempt_outcome(state)
        else:  # the states do not number the attempts as Prefect counted them
            for number, status in recorded.items():
                if number < run.run_count and status is JobStatus.SUCCESS:
                    endings[number] = (JobStatus.FAILED, "failed: a later attempt followed")
        for number, (status, error) in sorted(endings.items()):
            if recorded.get(number) in (None, JobStatus.PROCESSING, status):
                continue
            written = repository.finish_attempt(
                flow_run_id=str(run.id),
                attempt=number,
                status=status,
                job_name=flow_names.get(run.flow_id, "?"),
                param=_jsonable((run.parameters or {}).get("param")),
                schedule_id=_env_of(run, envs).get(SCHEDULE_ID_ENV),
                error=error,
                correct=True,
            )
            if written:
                logger.warning(
                    "history: run %s attempt %d recorded %s, Prefect says %s: corrected",
                    run.id, number, recorded[number].value, status.value,
                )  # fmt: skip
                corrected += 1
    return corrected


def _attempt_outcome(state: State) -> tuple[JobStatus, str | None]:
    """The outcome of an attempt that ``state`` ended (AwaitingRetry: it failed)."""
    if state.name == "AwaitingRetry":
        return JobStatus.FAILED, "failed: retried (recorded from Prefect)"
    return outcome_of(state)


def _record_backfill_origin(repository: Repository, run: FlowRun, schedule_id: str | None) -> None:
    """The origin of a run a backfill created but could not record (the database was
    down then): its tag names the range, its expected start the fire time."""
    origin = backfill_plan.origin_of_tags(run.tags)
    if origin is None or schedule_id is None or run.expected_start_time is None:
        return
    run_origins.record(
        repository,
        flow_run_id=str(run.id),
        schedule_id=schedule_id,
        origin=origin,
        logical_time=run.expected_start_time.astimezone(UTC),
        now=utcnow(),
    )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
