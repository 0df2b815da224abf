"""The account of a chaos soak: what happened to every fire time, computed exactly.

A pure function over facts collected at the end of the soak (``Facts``): the rows' configs
over time (from the soak's own log of edits), Prefect's flow runs of the managed
deployments, the ``JobHistory`` rows, the recorded missed runs, the deployments left and
every ``call-job`` answer. It returns every violation of the invariant; none is the target.

For every row and every fire time in the window at which the row was active, exactly one
of: a run that ended Completed with its last attempt SUCCESS; a run that ended Failed /
Crashed / TimedOut with its last attempt FAILED with a reason and at most
``maxRetries + 1`` attempts; a misfire skip (a Cancelled state named ``Skipped``); an
overlap skip (``overlap = skip``: Cancelled by the deployment's concurrency limit before it
started); a missed run recorded in ``jobctl_missed_run`` (with no run, or a run Prefect
cancelled before it started for another reason).

An edit is not instantaneous: from the SQL commit until Prefect has the new deployment
(``settled``), plus the workers' prefetch (a worker takes a run up to
``PREFECT_WORKER_PREFETCH_SECONDS`` before its time, and a taken run is no longer deleted
by a deployment update), a fire time of the old or of the new config may run or not;
if it runs, its run is held to the same rules.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from jobctl.prefect.missed_runs import due_times

# Outcome kinds of a fire time (what the report counts).
COMPLETED = "completed"
FAILED = "failed after its retries"
TIMED_OUT = "timed out"
CRASHED = "crashed"
MISFIRE_SKIP = "misfire skip"
OVERLAP_SKIP = "overlap skip"
MISSED = "missed, reported"
LATE_REPORTED = "ran late, also reported missed"

# Violation kinds.
UNACCOUNTED = "fire time unaccounted"
EXECUTED_TWICE = "executed twice for one fire time"
UNFINISHED = "run not finished after the quiet period"
WRONG_LAST_ATTEMPT = "final state and last attempt disagree"
NO_REASON = "failed attempt without a reason"
TOO_MANY_ATTEMPTS = "more attempts than maxRetries + 1"
UNEXPLAINED_CANCEL = "cancelled without a reason jobctl gives"
LEFT_PROCESSING = "history row left PROCESSING"
ATTEMPT_WITHOUT_HISTORY = "attempt without a history row"
RAN_WHILE_INACTIVE = "ran at a fire time its row was not active"
DELETED_ROW_DEPLOYMENT = "deployment of a deleted row"
ROW_WITHOUT_DEPLOYMENT = "row without its deployment"
DEPLOYMENT_STATE = "deployment paused state differs from the row"
CALL_BAD_STATUS = "call-job answered other than 200, 424 or 503"
CALL_UNANSWERED = "call-job not answered while the API was up"
CALL_200_WITHOUT_SUCCESS = "call-job 200 without its SUCCESS row"

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
SKIPPED_STATE = "Skipped"  # flows.job_flows.SKIPPED_STATE_NAME
# The message of Prefect's cancel of a run of an ``overlap = skip`` deployment whose
# previous run holds the slot (core_policy, CANCEL_NEW). Prefect cancels runs before they
# start for other reasons too ("Deployment concurrency slot lost during provisioning"
# after its leases were lost): those fire times did not run, and are accounted only if
# jobctl reported them missed.
OVERLAP_CANCEL = "Deployment concurrency limit reached."
ANSWERS = {200, 424, 503}


@dataclass(frozen=True, kw_only=True)
class RowConfig:
    """One row's config from ``start`` (its SQL commit) until the next one of the row."""

    row_id: str
    cron: str
    zone: str
    active: bool
    max_retries: int
    overlap: str = "allow"
    start: datetime
    settled: datetime  # Prefect had this config from then on
    deleted: bool = False  # this config is the row's deletion


@dataclass(frozen=True, kw_only=True)
class RunFact:
    id: str
    row_id: str
    expected_start: datetime
    auto_scheduled: bool
    state_type: str  # StateType's value: COMPLETED, FAILED, CRASHED, CANCELLED, RUNNING...
    state_name: str
    state_message: str = ""
    run_count: int = 0


@dataclass(frozen=True, kw_only=True)
class AttemptFact:
    flow_run_id: str
    attempt: int
    status: str  # PROCESSING, SUCCESS, FAILED
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallFact:
    at: datetime
    job: str
    status: int | None  # None: no answer (the connection failed)
    flow_run_id: str | None = None
    detail: str = ""
    api_down: bool = False  # the API process was killed or restarting meanwhile


@dataclass(frozen=True, kw_only=True)
class DeploymentFact:
    row_id: str
    paused: bool


# The missed-run detector records a fire time once its grace ran out, at its next minute.
MISSED_RUN_LOOKBACK_S = 120.0


@dataclass(frozen=True, kw_only=True)
class Facts:
    window_start: datetime
    window_end: datetime
    configs: Sequence[RowConfig]
    runs: Sequence[RunFact]
    attempts: Sequence[AttemptFact]
    missed: Sequence[tuple[str, datetime]]  # (row id, due time)
    rows: dict[str, bool]  # rows left at the end -> isActive
    deployments: Sequence[DeploymentFact]
    calls: Sequence[CallFact] = ()
    injected_runs: frozenset[str] = frozenset()  # runs the fault injector created
    prefetch_s: float = 40.0
    # A row deleted this soon after a fire time: the run of it that had not started is
    # deleted with the deployment, and the missed-run detector (grace, then its minute)
    # never saw the fire time as missed. Such a fire time is in transition. The soak
    # widens it to the reconciler's pending-run grace (``soak.DELETION_LOOKBACK_S``).
    deletion_lookback_s: float = MISSED_RUN_LOOKBACK_S


@dataclass(frozen=True)
class Violation:
    kind: str
    row_id: str | None
    fire_time: datetime | None
    detail: str

    def as_json(self) -> dict[str, str | None]:
        return {
            "kind": self.kind,
            "row_id": self.row_id,
            "fire_time": self.fire_time.isoformat() if self.fire_time else None,
            "detail": self.detail,
        }


@dataclass
class Account:
    due: int = 0  # fire times at which a row was active (edits' transitions excluded)
    in_transition: int = 0  # fire times during an edit's propagation
    outcomes: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    runs: int = 0
    calls: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, object]:
        return {
            "fire_times_due": self.due,
            "fire_times_in_transition": self.in_transition,
            "runs": self.runs,
            "outcomes": dict(sorted(self.outcomes.items())),
            "calls": dict(sorted(self.calls.items())),
            "violations": [v.as_json() for v in self.violations],
            "violations_by_kind": dict(Counter(v.kind for v in self.violations)),
        }


# -- fire times ------------------------------------------------------------------------------


def _fires(config: RowConfig, after: datetime, until: datetime) -> list[datetime]:
    if until <= after:
        return []
    return sorted(due_times(config.cron, config.zone, after, until))


def fire_times(
    configs: Sequence[RowConfig],
    window_start: datetime,
    window_end: datetime,
    prefetch_s: float,
    deletion_lookback_s: float = 0.0,
) -> tuple[set[datetime], set[datetime]]:
    """(due, in transition) fire times of one row's configs, in order of ``start``.

    Due: fire times of an active config after Prefect had it (plus the prefetch) and up to
    the next config's commit. In transition: those of the old and the new config between
    an edit's commit and the moment Prefect had it, plus the prefetch, and those of the
    ``deletion_lookback_s`` before a row's deletion.
    """
    due: set[datetime] = set()
    transition: set[datetime] = set()
    prefetch = timedelta(seconds=prefetch_s)
    ordered = sorted(configs, key=lambda c: c.start)
    for index, config in enumerate(ordered):
        end = ordered[index + 1].start if index + 1 < len(ordered) else window_end
        end = min(end, window_end)
        settled = max(config.settled, config.start) + (prefetch if index > 0 else timedelta())
        stable_from = max(settled, window_start)
        if config.active and not config.deleted:
            due.update(_fires(config, stable_from, end))
            transition.update(_fires(config, max(config.start, window_start), stable_from))
        if index > 0:
            previous = ordered[index - 1]
            if previous.active and not previous.deleted:
                transition.update(_fires(previous, max(config.start, window_start), settled))
                if config.deleted:
                    lookback = config.start - timedelta(seconds=deletion_lookback_s)
                    dropped = _fires(previous, max(lookback, window_start), config.start)
                    due.difference_update(dropped)
                    transition.update(dropped)
    return due, transition - due


# -- runs ------------------------------------------------------------------------------------


def _started(run: RunFact) -> bool:
    """The run executed the job (a misfire skip starts a flow run but not the job)."""
    return run.run_count > 0 and run.state_name != SKIPPED_STATE


def _ended_unstarted(run: RunFact, attempts: dict[str, list[AttemptFact]]) -> bool:
    return run.state_type in FINAL and run.run_count == 0 and not attempts.get(run.id)


def _outcome(
    run: RunFact,
    attempts: list[AttemptFact],
    max_retries: int,
    overlap: str,
    reported_missed: bool = False,
) -> tuple[str | None, list[tuple[str, str]]]:
    """(outcome kind, [(violation kind, detail)]) of one run (``reported_missed``: its
    fire time is in ``jobctl_missed_run``)."""
    problems: list[tuple[str, str]] = []
    last = max(attempts, key=lambda a: a.attempt) if attempts else None
    if run.state_type not in FINAL:
        return None, [(UNFINISHED, f"run {run.id} is {run.state_name}")]
    if run.state_type == "CANCELLED":
        never_started = run.run_count == 0 and not attempts
        if run.state_name == SKIPPED_STATE and not attempts:
            return MISFIRE_SKIP, []
        if overlap == "skip" and never_started and run.state_message == OVERLAP_CANCEL:
            return OVERLAP_SKIP, []
        if never_started and reported_missed:
            return MISSED, []
        detail = f"run {run.id} {run.state_name}: {run.state_message[:200]}"
        return None, [(UNEXPLAINED_CANCEL, detail)]
    if run.state_type == "COMPLETED":
        if last is None or last.status != "SUCCESS":
            found = last.status if last else "no attempt"
            problems.append((WRONG_LAST_ATTEMPT, f"run {run.id} Completed, last attempt {found}"))
        return COMPLETED, problems
    kind = (
        TIMED_OUT
        if run.state_name == "TimedOut"
        else (CRASHED if run.state_type == "CRASHED" else FAILED)
    )
    if last is None or last.status != "FAILED":
        found = last.status if last else "no attempt"
        problems.append((WRONG_LAST_ATTEMPT, f"run {run.id} {run.state_name}, last {found}"))
    elif not (last.error or "").strip():
        problems.append((NO_REASON, f"run {run.id} attempt {last.attempt} FAILED, no error"))
    if len(attempts) > max_retries + 1:
        problems.append(
            (TOO_MANY_ATTEMPTS, f"run {run.id}: {len(attempts)} attempts, maxRetries {max_retries}")
        )
    return kind, problems


def _history_problems(run: RunFact, attempts: list[AttemptFact]) -> Iterator[tuple[str, str]]:
    for attempt in attempts:
        if attempt.status == "PROCESSING":
            yield LEFT_PROCESSING, f"run {run.id} attempt {attempt.attempt}"
    if _started(run) and run.state_type in FINAL:
        numbers = {a.attempt for a in attempts}
        missing = sorted(set(range(1, run.run_count + 1)) - numbers)
        if missing:
            yield (
                ATTEMPT_WITHOUT_HISTORY,
                f"run {run.id} ran {run.run_count} attempt(s), no history of {missing}",
            )


# -- the account -----------------------------------------------------------------------------


def account(facts: Facts) -> Account:
    """Every fire time accounted for, or a violation saying why not."""
    result = Account()
    by_row: dict[str, list[RowConfig]] = defaultdict(list)
    for config in facts.configs:
        by_row[config.row_id].append(config)
    attempts: dict[str, list[AttemptFact]] = defaultdict(list)
    for attempt in facts.attempts:
        attempts[attempt.flow_run_id].append(attempt)
    runs_at: dict[tuple[str, datetime], list[RunFact]] = defaultdict(list)
    for run in facts.runs:
        if run.auto_scheduled:
            runs_at[(run.row_id, run.expected_start)].append(run)
    missed = set(facts.missed)
    result.runs = len(facts.runs)

    def check(config_runs: list[RunFact], row_id: str, at: datetime | None) -> list[str]:
        """Outcome kinds of the runs, every problem recorded."""
        configs = by_row.get(row_id, [])
        max_retries = max((c.max_retries for c in configs), default=0)
        overlap = configs[-1].overlap if configs else "allow"
        kinds = []
        reported = at is not None and (row_id, at) in missed
        for run in config_runs:
            kind, problems = _outcome(run, attempts.get(run.id, []), max_retries, overlap, reported)
            problems += list(_history_problems(run, attempts.get(run.id, [])))
            for problem, detail in problems:
                result.violations.append(Violation(problem, row_id, at, detail))
            if kind is not None:
                kinds.append(kind)
        return kinds

    accounted: set[tuple[str, datetime]] = set()
    for row_id, configs in sorted(by_row.items()):
        due, transition = fire_times(
            configs,
            facts.window_start,
            facts.window_end,
            facts.prefetch_s,
            facts.deletion_lookback_s,
        )
        result.due += len(due)
        result.in_transition += len(transition)
        for at in sorted(due | transition):
            accounted.add((row_id, at))
            runs = runs_at.get((row_id, at), [])
            executed = [run for run in runs if _started(run)]
            if len(executed) > 1:
                ids = ", ".join(run.id for run in executed)
                result.violations.append(Violation(EXECUTED_TWICE, row_id, at, ids))
            if at not in due:
                # In transition, a fire time may or may not run: a run that ended without
                # ever starting (taken, then crashed once its deployment was deleted, so
                # the reconciler had no policy to retry it by) did not run.
                check([run for run in runs if not _ended_unstarted(run, attempts)], row_id, at)
                continue
            kinds = check(runs, row_id, at)
            if executed:
                outcome = check_kind(kinds, executed_first=True)
                if (row_id, at) in missed:
                    outcome = LATE_REPORTED
                result.outcomes[outcome] += 1
            elif kinds:
                result.outcomes[kinds[0]] += 1
            elif (row_id, at) in missed:
                result.outcomes[MISSED] += 1
            elif runs:
                pass  # a run that is not final: reported as unfinished above
            else:
                result.violations.append(
                    Violation(UNACCOUNTED, row_id, at, "no run, no missed-run record")
                )

    for (row_id, at), runs in sorted(runs_at.items()):
        if (row_id, at) in accounted or not (facts.window_start < at <= facts.window_end):
            continue
        for run in runs:
            if _started(run):
                result.violations.append(
                    Violation(RAN_WHILE_INACTIVE, row_id, at, f"run {run.id} {run.state_name}")
                )
            else:
                check([run], row_id, at)

    for run in facts.runs:
        if run.id in facts.injected_runs:
            kinds = check([run], run.row_id, None)
            result.outcomes[f"injected: {kinds[0] if kinds else 'unfinished'}"] += 1

    _check_deployments(facts, result)
    _check_calls(facts, attempts, result)
    return result


def check_kind(kinds: list[str], *, executed_first: bool) -> str:
    """The outcome of a fire time whose runs gave ``kinds``: an execution wins over skips."""
    for kind in kinds:
        if kind not in (MISFIRE_SKIP, OVERLAP_SKIP) or not executed_first:
            return kind
    return kinds[0] if kinds else UNFINISHED


def _check_deployments(facts: Facts, result: Account) -> None:
    deployed = {d.row_id: d for d in facts.deployments}
    for row_id, active in sorted(facts.rows.items()):
        deployment = deployed.get(row_id)
        if deployment is None:
            result.violations.append(Violation(ROW_WITHOUT_DEPLOYMENT, row_id, None, ""))
        elif deployment.paused == active:
            result.violations.append(
                Violation(
                    DEPLOYMENT_STATE,
                    row_id,
                    None,
                    f"row active {active}, paused {deployment.paused}",
                )
            )
    for row_id in sorted(set(deployed) - set(facts.rows)):
        result.violations.append(Violation(DELETED_ROW_DEPLOYMENT, row_id, None, ""))


def _check_calls(facts: Facts, attempts: dict[str, list[AttemptFact]], result: Account) -> None:
    for call in facts.calls:
        result.calls[str(call.status) if call.status is not None else "no answer"] += 1
        if call.status is None:
            if not call.api_down:
                result.violations.append(
                    Violation(CALL_UNANSWERED, None, call.at, f"{call.job}: {call.detail[:200]}")
                )
        elif call.status not in ANSWERS:
            result.violations.append(
                Violation(
                    CALL_BAD_STATUS, None, call.at, f"{call.job} {call.status}: {call.detail[:200]}"
                )
            )
        elif call.status == 200:
            found = attempts.get(call.flow_run_id or "", [])
            if not any(a.status == "SUCCESS" for a in found):
                result.violations.append(
                    Violation(CALL_200_WITHOUT_SUCCESS, None, call.at, f"run {call.flow_run_id}")
                )


def summary(violations: Iterable[Violation]) -> str:
    counts = Counter(v.kind for v in violations)
    return ", ".join(f"{kind}: {n}" for kind, n in counts.most_common()) or "none"
