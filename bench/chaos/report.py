"""The "Chaos soak" section of docs/RELIABILITY.md, from a chaos result JSON.

``write_section`` (re)writes just that section, between its markers, so a soak updates
the report without the 25 minutes of the full regeneration; the full one
(``bench.reliability_report``) writes it too, from the newest ``chaos-*.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "RELIABILITY.md"
BEGIN = "<!-- chaos soak: generated from bench/results/chaos-*.json -->"
END = "<!-- end of chaos soak -->"


# What soaks found on the way, each now a deterministic test (the seed that found it).
FOUND = [
    (
        "1",
        "`call-job` answered 500 during a Prefect server restart: the in-process run could "
        "not be created (connection refused, wrapped by Prefect in a RuntimeError)",
        "fixed: 503 (`jobctl/prefect/manual_runs.py`); "
        "`tests/integration/test_api.py::test_calling_a_job_while_prefect_is_unreachable_"
        "answers_503_not_500`",
    ),
    (
        "1",
        "an attempt without a history row: a late run's first attempt timed out during the "
        "misfire check, before the flow body wrote its row; the run had other rows, so the "
        "reconciler never backfilled it",
        "fixed: the reconciler backfills each missing attempt; "
        "`tests/unit/test_reconciler_over_fake.py::test_an_attempt_that_ended_before_"
        "writing_its_row_is_backfilled_alone`",
    ),
    (
        "1",
        "a fire time executed twice: an edit reached Prefect after a worker had taken the "
        "next run (40 s prefetch); Prefect's upsert replaced the schedule, and the "
        "scheduler's new run for that time had a new idempotency key. Any edit of a row in "
        "the prefetch window before a fire time did it, faults or not",
        "fixed: the sync updates a deployment in place, keeping its schedules' ids "
        "(`jobctl/prefect/gateway/client.py`); `tests/e2e/test_chaos_findings.py`",
    ),
    (
        "18",
        "the pool stopped: runs taken by a worker that then died (killed, stopped, or "
        "exiting on Prefect's 500s while PostgreSQL restarted) stayed Pending for good; 19 "
        "of them and one lost Running run (no timeout, its zombie automation never fired) "
        "held the pool's 20 slots from about 10:52, and 758 due runs were still Late or "
        "waiting at the end",
        "fixed: the reconciler crashes runs Pending for longer than "
        "`JOBCTL_PENDING_RUN_GRACE_S` (5 min; the soak sets 3 min); "
        "`tests/unit/test_reconciler_over_fake.py::test_a_run_pending_for_minutes_is_crashed`",
    ),
    (
        "18",
        "final state and history disagree: 12 runs of rows near their timeout (a 3 or 4 s "
        "job, timeout 5 s, load about 12 on 2 cores) ended TimedOut in Prefect while their "
        "attempt was recorded SUCCESS: the timeout ran out after the job returned and the "
        "body wrote SUCCESS; the failure hook found the attempt closed",
        "fixed: a failure hook replaces a SUCCESS, and the reconciler corrects the attempts "
        "of ended runs that disagree with Prefect's states; "
        "`tests/unit/test_reconciler_over_fake.py::test_history_that_disagrees_with_"
        "prefects_final_state_is_corrected`, `tests/unit/test_history_hooks.py`",
    ),
    (
        "18",
        "a misfire skip with an attempt: a worker's crash hook ran for a run it had taken "
        "but not begun (run_count 0) and wrote attempt 1 FAILED; the reconciler retried the "
        "crashed run, which, late, was skipped as a misfire",
        "fixed: a crash hook closes attempt 1 only if the flow process began it; "
        "`tests/unit/test_history_hooks.py::test_a_run_crashed_before_its_first_attempt_"
        "writes_no_attempt`",
    ),
    (
        "18",
        "2 fire times of a row (10:52 and 10:53 UTC) with no run and no missed-run record: "
        "the row was deleted at 10:53:05; deleting its deployment deleted the runs that had "
        "not started, and the missed-run detector records a fire time only after its grace "
        "(then at its next minute), when the row was gone",
        "the account was wrong: a fire time within the missed-run grace plus a minute "
        "before its row's deletion may or may not run (in transition; a run is held to the "
        "same rules); `tests/unit/test_chaos_account.py::test_fire_times_just_before_a_"
        "deletion_are_in_transition`",
    ),
    (
        "18",
        "a lost Running run without a timeout was never ended: its zombie automation did "
        "not fire through repeated Prefect server restarts (its events are lost while the "
        "server or its database restarts)",
        "fixed: the reconciler crashes a run without a timeout whose flow process sent no "
        "heartbeat (Prefect's events) for twice the automation's silence plus the dead-run "
        "grace; `tests/unit/test_reconciler_over_fake.py::test_a_run_without_timeout_silent_"
        "for_minutes_is_crashed`, `tests/e2e/test_chaos_findings.py::test_the_heartbeats_of_"
        "a_run_without_timeout_reach_the_reconciler`",
    ),
    (
        "18",
        "(a soak after those fixes, stopped at 13 of its 30 minutes) five runs Running for "
        "good: PostgreSQL restarted as they began, so their flow processes wrote no history "
        "row, and their worker died (exit 1 on Prefect's 500s); the reconciler looked for "
        "lost runs through PROCESSING rows only, and the zombie automation missed them",
        "fixed: the reconciler reads the runs in progress from Prefect (Running past their "
        "timeout plus the grace, or silent without one, are crashed; their attempts are "
        "backfilled); `tests/unit/test_reconciler_over_fake.py::test_a_lost_run_without_"
        "history_is_crashed`",
    ),
    (
        "18",
        "(the same soak) failing runs left AwaitingRetry for good: Prefect's in-process "
        "retry was pending when their process died; crashed by the automation, they were "
        "put back AwaitingRetry by the reconciler, and no worker took them: Prefect offers "
        "workers no run marked for an in-process retry, and the mark stayed",
        "fixed: the gateway clears the mark when it forces a Scheduled state, and the "
        "reconciler crashes an in-process retry still waiting past the Pending grace; "
        "`tests/e2e/test_chaos_findings.py::test_a_crashed_run_that_had_an_in_process_retry_"
        "is_offered_to_the_workers_again`, `tests/unit/test_reconciler_over_fake.py::"
        "test_an_in_process_retry_whose_process_died_is_crashed`",
    ),
    (
        "18",
        "(the 5-minute soak, 12 rows, under a full test run: load about 11) a disabled row "
        "ran at two fire times while it was off: Prefect's scheduler inserted its next runs "
        "just after the pause had deleted the scheduled ones, and workers take a paused "
        "deployment's runs",
        "fixed: a scheduled run whose row is disabled when it starts skips itself "
        "(Skipped, as during a maintenance pause); "
        "`tests/unit/test_run_guards.py::test_a_scheduled_run_of_a_disabled_row_skips_itself`",
    ),
    (
        "18",
        '(the soak of 13:43) 5 fire times "executed twice" by one and the same run, and most of '
        'the 8 fire times "unaccounted" (6 of them at 13:50): the soak read Prefect\'s '
        "runs in pages sorted by expected start time, which 32 runs share each minute, so "
        "pages repeated some runs and skipped others",
        "the account's facts were wrong: fixed after this soak (pages sorted by id, runs "
        "deduplicated, `bench/chaos/soak.py`); not re-soaked",
    ),
    (
        "18",
        "(the soak of 13:43) 57 runs not final after the 8-minute quiet period (Late), 2 runs "
        "Crashed without an attempt, 2 runs of an `overlap` row cancelled by Prefect "
        '("Deployment concurrency slot lost during provisioning"): from 13:50 to 14:05 a '
        "full test run and a second soak ran beside this one (load about 11 on 2 cores); "
        "workers took minutes to start runs, 18 of the pool's 20 slots were held by runs "
        "`Submitting`, and the soak's 2-minute Pending grace crashed runs still starting "
        "(retried, churning the pool)",
        "not seen again in the soak of 16:48 on a machine left to it (load 2 to 5; the "
        "soak's Pending grace is 3 minutes since); the slot-lost cancels: below",
    ),
    (
        "18",
        "(5-minute soaks) attempts of retried 5 s-timeout runs went FAILED, SUCCESS, FAILED "
        "within 20 s: Prefect's engine proposed Completed and, 0.9 s later, TimedOut; a "
        "reconciler round read the run Completed, then the attempt the failure hook had just "
        "closed FAILED, and corrected it to SUCCESS; the next round put it back",
        "fixed: history is closed or corrected from a Completed or Failed state only once "
        "it is 30 s old "
        "(`FINAL_STATE_SETTLE`, `jobctl/prefect/reconciler.py`); "
        "`tests/unit/test_reconciler_over_fake.py::test_history_moves_only_to_a_settled_"
        "final_state_never_back_and_forth`",
    ),
    (
        "18",
        "(the 5-minute soak under a full test run) a fire time with no run and no missed-run "
        "record, after a cron edit: a deployment update deletes the runs no worker has taken, "
        "and Prefect's scheduler makes them again within seconds, or at its next minute "
        "loop when PostgreSQL restarted meanwhile (it did, 6 s after the edit); the "
        "missed-run detector counted every due time before the row's last start as run, so a "
        "gap between two runs was never reported",
        "fixed: each first attempt stands for one due time, a due time no attempt started "
        "within its grace is missed, gaps included (`jobctl/prefect/missed_runs.py`); "
        "`tests/unit/test_missed_runs.py::test_a_due_time_between_two_runs_with_no_run_of_its_"
        "own_is_missed`, `tests/integration/test_missed_runs.py::test_a_gap_between_runs_is_"
        "missed_and_backfills_or_manual_runs_do_not_fill_it`",
    ),
    (
        "18",
        "(the soak of 16:48) 4 runs of `overlap = queue` rows cancelled by Prefect as they "
        'started, "Deployment concurrency slot lost during provisioning", after a Prefect '
        "server restart: the leases of deployment concurrency slots were in the server's "
        "memory, so a run taken (Pending) before the restart found its lease gone and its "
        "slot still counted as taken. The soak's server also lacked env.example's 5 s slot "
        "wait",
        "fixed: leases on disk (`PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE`, in "
        "`SERVER_TUNING` and `deploy/env.example`), and the soak's server runs with "
        "`SERVER_TUNING`; `tests/integration/test_server_settings.py`, "
        "`tests/unit/test_chaos_stack.py`. The account: a run Prefect cancels before it "
        "starts is a missed fire time, accounted only when recorded missed "
        "(`tests/unit/test_chaos_account.py::test_a_run_prefect_cancelled_before_it_started_"
        "is_a_miss_to_report`)",
    ),
    (
        "45",
        "(the 5-minute soak of `make test`, under full test runs) a row's run ended Crashed "
        "without an attempt: a worker took it 40 s ahead and was killed (or the run was "
        "crashed) before it started, and the row was deleted before the reconciler's "
        "Pending grace (3 minutes in the soak) let it put the run back: its deployment gone, "
        "there was no policy to retry it by. Once the fire time was 65 s before the row's "
        "deletion (in transition), once 125 s before it (due)",
        "the account was wrong: a run that ended without starting did not run, and a fire "
        "time within the Pending grace plus a reconciler pass (190 s) before its row's "
        "deletion is in transition (`DELETION_LOOKBACK_S`, `bench/chaos/soak.py`); "
        "`tests/unit/test_chaos_account.py::test_a_run_of_a_deleted_row_that_crashed_before_"
        "it_started_did_not_run`, `tests/unit/test_chaos_account.py::test_a_run_lost_before_"
        "it_started_and_its_row_deleted_within_the_pending_grace`",
    ),
]


def section(path: Path) -> list[str]:
    data: dict[str, Any] = json.loads(path.read_text())
    found = data.get("account", {})
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    violations = found.get("violations", [])
    lines = [
        BEGIN,
        "## Chaos soak",
        "",
        "Overlapping faults over time, then an exact account of every fire time "
        "(`python -m bench chaos`, `bench/chaos/`): PostgreSQL tables and a Prefect server "
        "on PostgreSQL (a cluster of the soak's own), two `jobctl-warm` workers, the watcher "
        "and the API serving `call-job` to a small client. Every 30 to 90 s one or two faults "
        "(seeded); each killed process is restarted 3 s later, as systemd's "
        "`Restart=always` would.",
        "",
        f"From `{shown}`: seed **{data.get('seed')}** "
        f"(replay: `python -m bench chaos --minutes {data.get('minutes'):g} "
        f"--seed {data.get('seed')} --chaos-rows {data.get('rows')}`), "
        f"{data.get('minutes'):g} min of faults, {data.get('rows')} rows firing every minute "
        f"(and one filling memory when told), {data.get('wall_s', 0) / 60:.0f} min in all; "
        f"window {data.get('window_start', '?')} to {data.get('window_end', '?')}; "
        f"load then {data.get('machine', {}).get('loadavg')}.",
        "",
        "| faults injected | count |",
        "| --- | --- |",
        *(f"| {kind} | {count} |" for kind, count in data.get("faults", {}).items()),
        "",
        f"Fire times due: **{found.get('fire_times_due', 0)}** (and "
        f"{found.get('fire_times_in_transition', 0)} during an edit's propagation, held "
        f"to the same rules when they ran); flow runs: {found.get('runs', 0)}.",
        "",
        "| outcome | count |",
        "| --- | --- |",
        *(f"| {kind} | {count} |" for kind, count in found.get("outcomes", {}).items()),
        "",
        "| call-job answers | count |",
        "| --- | --- |",
        *(f"| {status} | {count} |" for status, count in found.get("calls", {}).items()),
        "",
        f"**Violations of the invariant: {len(violations)}**"
        + (" (target: none)." if violations else "."),
        "",
    ]
    if violations:
        lines += ["| violation | row | fire time | detail |", "| --- | --- | --- | --- |"]
        for item in violations[:50]:
            detail = str(item.get("detail", "")).replace("|", "\\|")[:160]
            lines.append(
                f"| {item['kind']} | {item.get('row_id') or '—'} | "
                f"{item.get('fire_time') or '—'} | {detail} |"
            )
        if len(violations) > 50:
            lines.append(f"| … {len(violations) - 50} more in the JSON | | | |")
        lines.append("")
    lines += [
        "Found by soaks on the way (seed 1: a 3-minute soak with 8 rows; seed 18: 5-minute "
        "soaks with 12 rows and 30-minute soaks with 32 rows; seed 45: the 5-minute soak of "
        "`make test`), with the deterministic test "
        "each fixed one became:",
        "",
        "| seed | what | now |",
        "| --- | --- | --- |",
        *(f"| {seed} | {what} | {now} |" for seed, what, now in FOUND),
        "",
    ]
    return [*lines, END]


def write_section(path: Path, report: Path = REPORT) -> None:
    """Replace the section in ``report`` (or append it)."""
    text = report.read_text() if report.exists() else "# Reliability\n"
    new = "\n".join(section(path))
    if BEGIN in text and END in text:
        before, _, rest = text.partition(BEGIN)
        _, _, after = rest.partition(END)
        text = before + new + after
    else:
        text = text.rstrip() + "\n\n" + new + "\n"
    report.write_text(text)


def main() -> None:
    """``python -m bench.chaos.report [JSON]``: (re)write the section from a result (the
    newest ``bench/results/chaos-*.json`` by default)."""
    import sys

    found = sorted((ROOT / "bench" / "results").glob("chaos-*.json"))
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else (found[-1] if found else None)
    if path is None:
        raise SystemExit("no chaos result: run python -m bench chaos")
    write_section(path)
    print(f"wrote the Chaos soak section of {REPORT.relative_to(ROOT)} from {path.name}")


if __name__ == "__main__":
    main()
