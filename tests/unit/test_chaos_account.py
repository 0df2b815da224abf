"""The chaos soak's account (``bench/chaos/account.py``) on hand-made facts: each violation
kind can be found, and a clean soak has none."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bench.chaos import account as acc
from bench.chaos import soak
from bench.chaos.account import (
    AttemptFact,
    CallFact,
    DeploymentFact,
    Facts,
    RowConfig,
    RunFact,
    account,
)

T0 = datetime(2026, 12, 1, 10, 0, 30, tzinfo=UTC)  # the window opens mid-minute
MINUTE = timedelta(minutes=1)
FIRES = [datetime(2026, 12, 1, 10, m, tzinfo=UTC) for m in (1, 2, 3)]
ROW = "row-1"


def _config(**changes: object) -> RowConfig:
    base = RowConfig(row_id=ROW, cron="* * * * *", zone="UTC", active=True, max_retries=1,
                     start=T0 - MINUTE, settled=T0 - MINUTE)  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def _run(at: datetime, state: str = "COMPLETED", name: str = "Completed", **kw: object) -> RunFact:
    run_id = kw.pop("id", f"run-{at:%H%M}")
    values = {"run_count": 1, **kw}
    return RunFact(id=str(run_id), row_id=ROW, expected_start=at, auto_scheduled=True,
                   state_type=state, state_name=name, **values)  # type: ignore[arg-type]  # fmt: skip


def _ok(run: RunFact, status: str = "SUCCESS", attempt: int = 1) -> AttemptFact:
    error = "boom" if status == "FAILED" else None
    return AttemptFact(flow_run_id=run.id, attempt=attempt, status=status, error=error)


def _facts(**changes: object) -> Facts:
    runs = [_run(at) for at in FIRES]
    base = Facts(
        window_start=T0,
        window_end=T0 + 3 * MINUTE,
        configs=[_config()],
        runs=runs,
        attempts=[_ok(run) for run in runs],
        missed=[],
        rows={ROW: True},
        deployments=[DeploymentFact(row_id=ROW, paused=False)],
        calls=[],
        prefetch_s=40,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _kinds(facts: Facts) -> list[str]:
    return [violation.kind for violation in account(facts).violations]


def test_a_clean_soak_accounts_every_fire_time_and_has_no_violation() -> None:
    found = account(_facts())
    assert found.due == 3
    assert found.outcomes == {acc.COMPLETED: 3}
    assert found.violations == []


def test_a_fire_time_without_run_nor_missed_record_is_unaccounted() -> None:
    runs = [_run(FIRES[0]), _run(FIRES[2])]
    facts = _facts(runs=runs, attempts=[_ok(run) for run in runs])
    [violation] = account(facts).violations
    assert (violation.kind, violation.fire_time) == (acc.UNACCOUNTED, FIRES[1])
    reported = replace(facts, missed=[(ROW, FIRES[1])])
    assert account(reported).violations == []
    assert account(reported).outcomes[acc.MISSED] == 1


def test_two_runs_executed_for_one_fire_time() -> None:
    twin = _run(FIRES[0], id="twin")
    facts = _facts()
    facts = replace(facts, runs=[*facts.runs, twin], attempts=[*facts.attempts, _ok(twin)])
    assert _kinds(facts) == [acc.EXECUTED_TWICE]
    # A duplicate that was skipped without running is not a second execution.
    skipped = replace(twin, state_type="CANCELLED", state_name="Skipped", run_count=1)
    assert (
        _kinds(replace(facts, runs=[*facts.runs[:3], skipped], attempts=facts.attempts[:3])) == []
    )


@pytest.mark.parametrize(
    ("run_changes", "attempts", "kind"),
    [
        ({"state_type": "RUNNING", "state_name": "Running"}, ["PROCESSING"], acc.UNFINISHED),
        ({}, ["FAILED"], acc.WRONG_LAST_ATTEMPT),
        ({"state_type": "FAILED", "state_name": "Failed"}, ["SUCCESS"], acc.WRONG_LAST_ATTEMPT),
        ({"state_type": "CANCELLED", "state_name": "Cancelled"}, [], acc.UNEXPLAINED_CANCEL),
        ({"state_type": "FAILED", "state_name": "Failed", "run_count": 3},
         ["FAILED", "FAILED", "FAILED"], acc.TOO_MANY_ATTEMPTS),
        ({"run_count": 2}, ["SUCCESS"], acc.ATTEMPT_WITHOUT_HISTORY),
    ],
)  # fmt: skip
def test_a_run_that_ended_badly_is_a_violation(
    run_changes: dict[str, object], attempts: list[str], kind: str
) -> None:
    bad = replace(_run(FIRES[1]), **run_changes)  # type: ignore[arg-type]
    rows = [
        AttemptFact(flow_run_id=bad.id, attempt=n + 1, status=status, error="boom")
        for n, status in enumerate(attempts)
    ]
    facts = _facts()
    facts = replace(
        facts,
        runs=[facts.runs[0], bad, facts.runs[2]],
        attempts=[facts.attempts[0], *rows, facts.attempts[2]],
    )
    assert kind in _kinds(facts)


def test_a_failed_attempt_needs_a_reason_and_a_processing_row_is_reported() -> None:
    failed = replace(_run(FIRES[0]), state_type="FAILED", state_name="TimedOut")
    facts = _facts()
    silent = AttemptFact(flow_run_id=failed.id, attempt=1, status="FAILED", error="  ")
    assert acc.NO_REASON in _kinds(
        replace(facts, runs=[failed, *facts.runs[1:]], attempts=[silent, *facts.attempts[1:]])
    )
    reasoned = replace(silent, error="timed out")
    found = account(
        replace(facts, runs=[failed, *facts.runs[1:]], attempts=[reasoned, *facts.attempts[1:]])
    )
    assert found.violations == []
    assert found.outcomes[acc.TIMED_OUT] == 1
    stuck = AttemptFact(flow_run_id=facts.runs[0].id, attempt=2, status="PROCESSING")
    assert acc.LEFT_PROCESSING in _kinds(replace(facts, attempts=[*facts.attempts, stuck]))


def test_skips_on_purpose_account_for_their_fire_time() -> None:
    misfire = replace(_run(FIRES[0]), state_type="CANCELLED", state_name="Skipped")
    overlap = replace(_run(FIRES[1]), state_type="CANCELLED", state_name="Cancelled", run_count=0,
                      state_message=acc.OVERLAP_CANCEL)  # fmt: skip
    facts = _facts(configs=[_config(overlap="skip")])
    found = account(
        replace(facts, runs=[misfire, overlap, facts.runs[2]], attempts=[facts.attempts[2]])
    )
    assert found.violations == []
    assert found.outcomes == {acc.MISFIRE_SKIP: 1, acc.OVERLAP_SKIP: 1, acc.COMPLETED: 1}
    # Without overlap = skip, a run cancelled before it started has no reason jobctl gives.
    plain = replace(facts, configs=[_config()], runs=[misfire, overlap, facts.runs[2]],
                    attempts=[facts.attempts[2]])  # fmt: skip
    assert _kinds(plain) == [acc.UNEXPLAINED_CANCEL]


@pytest.mark.parametrize("overlap", ["queue", "skip"])
def test_a_run_prefect_cancelled_before_it_started_is_a_miss_to_report(overlap: str) -> None:
    """Seed 18: after a Prefect server restart (its concurrency leases were in memory),
    the runs workers had taken of ``overlap`` rows were cancelled as they started. That
    fire time did not run: it is accounted only when jobctl reported it missed, and on an
    ``overlap = skip`` row it is no overlap skip."""
    lost = replace(
        _run(FIRES[1]),
        state_type="CANCELLED",
        state_name="Cancelled",
        run_count=0,
        state_message="Deployment concurrency slot lost during provisioning - no slots "
        "available to continue execution",
    )
    facts = _facts(configs=[_config(overlap=overlap)])
    facts = replace(
        facts,
        runs=[facts.runs[0], lost, facts.runs[2]],
        attempts=[facts.attempts[0], facts.attempts[2]],
    )
    assert _kinds(facts) == [acc.UNEXPLAINED_CANCEL]
    reported = account(replace(facts, missed=[(ROW, FIRES[1])]))
    assert reported.violations == []
    assert reported.outcomes == {acc.COMPLETED: 2, acc.MISSED: 1}


def test_an_edit_changes_the_fire_times_and_a_disabled_row_must_not_run() -> None:
    """The row is disabled at 10:01:05 and Prefect has it at 10:01:25: 10:02 is in
    transition (a worker may have taken its run 40 s ahead), 10:03 is not due; a run at
    10:03 ran while inactive."""
    edit = datetime(2026, 12, 1, 10, 1, 5, tzinfo=UTC)
    configs = [_config(), _config(active=False, start=edit, settled=edit + timedelta(seconds=20))]
    runs = [_run(FIRES[0])]
    facts = _facts(configs=configs, runs=runs, attempts=[_ok(runs[0])])
    found = account(facts)
    assert (found.due, found.in_transition, found.violations) == (1, 1, [])
    late = _run(FIRES[2])
    assert _kinds(replace(facts, runs=[*runs, late], attempts=[_ok(runs[0]), _ok(late)])) == [
        acc.RAN_WHILE_INACTIVE
    ]


def test_a_cron_edit_counts_the_fire_times_of_each_config() -> None:
    """Every minute until 10:01:05, then every other minute: settled at once, 10:02 is due
    under the new cron; settled at 10:01:30, 10:02 is in transition (a worker may have
    taken the old config's run 40 s ahead). 10:03 and 10:05 are never due."""
    edit = datetime(2026, 12, 1, 10, 1, 5, tzinfo=UTC)
    at_once = [_config(), _config(cron="*/2 * * * *", start=edit, settled=edit)]
    due, transition = acc.fire_times(at_once, T0, T0 + 6 * MINUTE, prefetch_s=40)
    even = [FIRES[1], FIRES[1] + 2 * MINUTE, FIRES[1] + 4 * MINUTE]
    assert (sorted(due), transition) == ([FIRES[0], *even], set())
    slow = [_config(), _config(cron="*/2 * * * *", start=edit, settled=edit + MINUTE / 4)]
    due, transition = acc.fire_times(slow, T0, T0 + 6 * MINUTE, prefetch_s=40)
    assert (sorted(due), transition) == ([FIRES[0], *even[1:]], {FIRES[1]})


def test_deployments_must_match_the_rows_left() -> None:
    assert _kinds(_facts(deployments=[])) == [acc.ROW_WITHOUT_DEPLOYMENT]
    gone = [DeploymentFact(row_id=ROW, paused=False), DeploymentFact(row_id="gone", paused=False)]
    assert _kinds(_facts(deployments=gone)) == [acc.DELETED_ROW_DEPLOYMENT]
    assert _kinds(_facts(deployments=[DeploymentFact(row_id=ROW, paused=True)])) == [
        acc.DEPLOYMENT_STATE
    ]


def test_call_job_answers() -> None:
    ok_run = _facts().runs[0].id
    calls = [
        CallFact(at=T0, job="processData", status=200, flow_run_id=ok_run),
        CallFact(at=T0, job="fail", status=424),
        CallFact(at=T0, job="processData", status=503),
        CallFact(at=T0, job="processData", status=None, api_down=True),
    ]
    assert _kinds(_facts(calls=calls)) == []
    assert _kinds(_facts(calls=[CallFact(at=T0, job="x", status=500)])) == [acc.CALL_BAD_STATUS]
    assert _kinds(_facts(calls=[CallFact(at=T0, job="x", status=None)])) == [acc.CALL_UNANSWERED]
    lost = CallFact(at=T0, job="processData", status=200, flow_run_id="no-history")
    assert _kinds(_facts(calls=[lost])) == [acc.CALL_200_WITHOUT_SUCCESS]


def test_an_injected_run_is_held_to_the_same_rules() -> None:
    leak = RunFact(id="leak", row_id=ROW, expected_start=T0, auto_scheduled=False,
                   state_type="FAILED", state_name="TimedOut", run_count=1)  # fmt: skip
    facts = _facts()
    facts = replace(facts, runs=[*facts.runs, leak], injected_runs=frozenset({"leak"}))
    assert _kinds(facts) == [acc.WRONG_LAST_ATTEMPT, acc.ATTEMPT_WITHOUT_HISTORY]
    timed_out = AttemptFact(flow_run_id="leak", attempt=1, status="FAILED", error="timed out")
    found = account(replace(facts, attempts=[*facts.attempts, timed_out]))
    assert found.violations == []
    assert found.outcomes[f"injected: {acc.TIMED_OUT}"] == 1


def test_fire_times_just_before_a_deletion_are_in_transition() -> None:
    """Found by the chaos soak (seed 18, 30 minutes): a row deleted at 10:53:05 had no run
    and no missed-run record for 10:52 and 10:53. Deleting a deployment deletes its runs
    that have not started, and the missed-run detector records a fire time only once its
    grace ran out (then at its next minute), by which time the row was gone: a fire time
    that recent may or may not run, and one that runs is held to the same rules."""
    deletion = datetime(2026, 12, 1, 10, 3, 5, tzinfo=UTC)
    configs = [_config(), _config(active=False, deleted=True, start=deletion, settled=deletion)]
    runs = [_run(FIRES[0])]
    facts = _facts(configs=configs, runs=runs, attempts=[_ok(runs[0])], rows={}, deployments=[])
    found = account(replace(facts, deletion_lookback_s=120))
    assert (found.due, found.in_transition, found.violations) == (1, 2, [])
    # Without the lookback, 10:02 and 10:03 are due, with nothing to account for them.
    assert _kinds(replace(facts, deletion_lookback_s=0)) == [acc.UNACCOUNTED, acc.UNACCOUNTED]
    failed = _run(FIRES[2], state="FAILED", name="Failed")
    ran = replace(facts, runs=[*runs, failed], attempts=[_ok(runs[0]), _ok(failed, "SUCCESS")])
    assert _kinds(ran) == [acc.WRONG_LAST_ATTEMPT]


def test_a_run_of_a_deleted_row_that_crashed_before_it_started_did_not_run() -> None:
    """Found by the 3-minute soak (seed 45, under a full test run): a row deleted at
    20:51:05 had its 20:50 run taken by a worker, never started, then crashed; its
    deployment gone, the reconciler had no policy to retry it by, and no attempt was ever
    made. A fire time in transition may not run: that run did not. The same run for a fire
    time that is due is still a fire time without a finished run."""
    deletion = datetime(2026, 12, 1, 10, 3, 5, tzinfo=UTC)
    configs = [_config(), _config(active=False, deleted=True, start=deletion, settled=deletion)]
    done = _run(FIRES[0])
    crashed = _run(FIRES[1], state="CRASHED", name="Crashed", run_count=0)
    facts = _facts(configs=configs, runs=[done, crashed], attempts=[_ok(done)], rows={},
                   deployments=[], deletion_lookback_s=120)  # fmt: skip
    assert _kinds(facts) == []
    # Started, it is held to the rules: a crashed attempt needs its FAILED row.
    assert _kinds(replace(facts, runs=[done, replace(crashed, run_count=1)])) == [
        acc.WRONG_LAST_ATTEMPT,
        acc.ATTEMPT_WITHOUT_HISTORY,
    ]
    # Due (no deletion after it), the fire time has no finished run with true history.
    due = replace(facts, configs=[_config()], rows={ROW: True},
                  deployments=[DeploymentFact(row_id=ROW, paused=False)])  # fmt: skip
    assert acc.WRONG_LAST_ATTEMPT in _kinds(due)


def test_a_run_lost_before_it_started_and_its_row_deleted_within_the_pending_grace() -> None:
    """Found by the 5-minute soak (seed 45, under a full CI run): the 21:20 run of a row was
    taken at 21:19:22 (40 s ahead) by a worker killed at 21:19:50, before the run started.
    The reconciler puts such a run back once it has been Pending for its grace (180 s in
    the soak), but the row was deleted at 21:22:05, 125 s after its fire time: its
    deployment gone, the run ended Crashed without an attempt. A deletion within the
    pending grace comes before the system could retry the run: that fire time is in
    transition, as one within the missed-run detector's horizon is."""
    deletion = FIRES[0] + timedelta(seconds=125)
    configs = [_config(), _config(active=False, deleted=True, start=deletion, settled=deletion)]
    lost = _run(FIRES[0], state="CRASHED", name="Crashed", run_count=0)
    done = _run(FIRES[1])
    facts = _facts(configs=configs, runs=[lost, done], attempts=[_ok(done)], rows={},
                   deployments=[], deletion_lookback_s=soak.DELETION_LOOKBACK_S)  # fmt: skip
    assert _kinds(facts) == []
    # With the missed-run horizon alone, the fire time is due: a Crashed run, no attempt.
    narrow = replace(facts, deletion_lookback_s=acc.MISSED_RUN_LOOKBACK_S)
    assert _kinds(narrow) == [acc.WRONG_LAST_ATTEMPT]
