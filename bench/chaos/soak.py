"""One chaos soak: start the stack, inject the seed's faults and edits, keep a log, then
collect the facts and compute the account (``account.account``).

The main loop runs in the main thread (every child is started from it, see
``services``): every half second it restarts what exited, injects what is due, applies
the due edits and watches Prefect take them. After the window a quiet period lets runs
end, the reconciler close history and the missed-run detector record what was missed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.chaos import plan
from bench.chaos.account import (
    MISSED_RUN_LOOKBACK_S,
    Account,
    AttemptFact,
    CallFact,
    DeploymentFact,
    Facts,
    RowConfig,
    RunFact,
    account,
)
from bench.chaos.client import CALL_TIMEOUT_S, CallClient, CallRecord
from bench.chaos.services import MARKER, Service, end_leftovers
from bench.chaos.stack import POOL, RECONCILER_TUNING, Stack, new_stack, remove_data
from jobctl import db, processes
from jobctl.cli.stack import WORKER_TUNING
from jobctl.records import ScheduleSpec
from jobctl.repository import Repository

logger = logging.getLogger("bench.chaos")

TICK_S = 0.5
START_TIMEOUT_S = 300.0
# The quiet period lasts until the account finds nothing left to settle (runs final, history
# closed, missed runs recorded), at least MIN_QUIET_S and at most MAX_QUIET_S.
MIN_QUIET_S = 30.0
MAX_QUIET_S = 480.0
SETTLED_CHECK_S = 10.0
EDIT_SECOND = 5  # edits are made 5 s into a minute: 55 s before the next fire time
DEFAULT_ZONE = "UTC"
PREFETCH_S = float(WORKER_TUNING["PREFECT_WORKER_PREFETCH_SECONDS"])
# Fire times this close before a row's deletion may or may not run (``Facts``): beyond the
# missed-run detector's horizon, a run taken by a worker that was lost before the run
# started is put back only once it has been Pending for the reconciler's grace, at the
# reconciler's next pass; a row deleted before then leaves that run without a deployment
# to be retried by (it ends Crashed, unstarted). Seed 45 under a full run: 125 s.
DELETION_LOOKBACK_S = max(
    MISSED_RUN_LOOKBACK_S,
    RECONCILER_TUNING["JOBCTL_PENDING_RUN_GRACE_S"]
    + RECONCILER_TUNING["JOBCTL_RECONCILE_INTERVAL_S"],
)
RESUME_POOL = "resume the pool"


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass
class Event:
    at: datetime
    what: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "what": self.what, **self.detail}


@dataclass
class Pending:
    """An action retried every tick until it is done (Prefect or PostgreSQL may be down)."""

    name: str
    due: float  # monotonic
    act: Callable[[], bool]
    give_up: float = float("inf")


@dataclass
class Soak:
    seed: int
    minutes: float
    row_count: int
    stack: Stack
    log_path: Path
    events: list[Event] = field(default_factory=list)
    row_ids: list[str] = field(default_factory=list)
    configs: list[RowConfig] = field(default_factory=list)
    deployment_rows: dict[str, str] = field(default_factory=dict)  # deployment id -> row
    injected: set[str] = field(default_factory=set)
    api_down: list[tuple[datetime, datetime]] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    window_start: datetime = field(default_factory=now_utc)
    window_end: datetime = field(default_factory=now_utc)
    calls: list[CallRecord] = field(default_factory=list)

    # -- log -----------------------------------------------------------------------------

    def note(self, what: str, **detail: Any) -> None:
        event = Event(now_utc(), what, detail)
        self.events.append(event)
        with self.log_path.open("a") as log:
            log.write(json.dumps(event.as_json(), default=str) + "\n")
        logger.info("%s %s", what, detail)

    # -- Prefect's REST API, short timeouts (the main loop must not hang) ---------------------

    def prefect(
        self, method: str, path: str, *, timeout_s: float = 5, tries: int = 1, **kwargs: Any
    ) -> httpx.Response:
        """A request to Prefect; reads of the facts retry (the server may be slow then)."""
        for attempt in range(tries):
            try:
                return httpx.request(
                    method, f"{self.stack.prefect_url}{path}", timeout=timeout_s, **kwargs
                )
            except httpx.HTTPError:
                if attempt == tries - 1:
                    raise
                time.sleep(5)
        raise AssertionError("unreachable")

    def read_deployments(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = self.prefect(
                "POST",
                "/deployments/filter",
                timeout_s=60,
                tries=5,
                json={"work_pools": {"name": {"any_": [POOL]}}, "limit": 200, "offset": len(found)},
            )
            page.raise_for_status()
            found += page.json()
            if len(page.json()) < 200:
                return found

    # -- rows --------------------------------------------------------------------------------

    def insert_rows(self) -> None:
        rows = plan.rows(self.seed, self.row_count)
        engine = db.create_db_engine(self.stack.database_url)
        try:
            repository = Repository(engine)
            for row in rows:
                added = repository.add_schedule(
                    ScheduleSpec(
                        cron=row.cron,
                        job_name=row.job,
                        param=row.param,
                        description=row.key,
                        priority=row.priority,
                        timeout_ms=row.timeout_ms,
                        max_retries=row.max_retries,
                        timezone=row.timezone,
                        retry_delay_ms=row.retry_delay_ms,
                        overlap=row.overlap,
                    )
                )
                created = added.created_at or now_utc()
                self.row_ids.append(added.id)
                self.configs.append(
                    RowConfig(
                        row_id=added.id,
                        cron=row.cron,
                        zone=row.timezone or DEFAULT_ZONE,
                        active=True,
                        max_retries=row.max_retries,
                        overlap=row.overlap,
                        start=created,
                        settled=created,
                    )
                )
        finally:
            engine.dispose()
        self.note("rows inserted", rows=len(rows))

    def edit_action(self, edit: plan.Edit) -> Callable[[], bool]:
        row_id = self.row_ids[edit.row]
        statement = {
            plan.CRON_EDIT: (
                'UPDATE "JobSchedule" SET cron = %s WHERE id = %s',
                (edit.cron, row_id),
            ),
            plan.DISABLE: ('UPDATE "JobSchedule" SET "isActive" = false WHERE id = %s', (row_id,)),
            plan.ENABLE: ('UPDATE "JobSchedule" SET "isActive" = true WHERE id = %s', (row_id,)),
            plan.DELETE: ('DELETE FROM "JobSchedule" WHERE id = %s', (row_id,)),
        }[edit.change]

        def act() -> bool:
            try:
                with psycopg.connect(self.stack.dsn(), connect_timeout=3) as conn:
                    conn.execute(*statement)
            except psycopg.Error as exc:
                logger.info("edit not made yet: %s", exc)
                return False
            committed = now_utc()
            previous = [c for c in self.configs if c.row_id == row_id][-1]
            config = RowConfig(
                row_id=row_id,
                cron=edit.cron or previous.cron,
                zone=previous.zone,
                active=(previous.active or edit.change == plan.ENABLE)
                and edit.change != plan.DISABLE,
                max_retries=previous.max_retries,
                overlap=previous.overlap,
                start=committed,
                settled=committed,  # until Prefect is seen to have it
                deleted=edit.change == plan.DELETE,
            )
            self.configs.append(config)
            self.note("edit", row=row_id, change=edit.change, cron=edit.cron)
            self.pending.append(
                Pending(
                    f"settle {edit.change} {row_id}",
                    time.monotonic(),
                    self.settle_action(config, edit),
                )
            )
            return True

        return act

    def settle_action(self, config: RowConfig, edit: plan.Edit) -> Callable[[], bool]:
        """Done when Prefect's deployment of the row shows the edit; its time is noted."""
        job = plan.rows(self.seed, self.row_count)[edit.row].job

        def act() -> bool:
            try:
                response = self.prefect("GET", f"/deployments/name/{job}/schedule-{config.row_id}")
            except httpx.HTTPError:
                return False
            if edit.change == plan.DELETE:
                done = response.status_code == 404
            elif response.status_code != 200:
                return False
            else:
                deployment = response.json()
                crons = [s["schedule"].get("cron") for s in deployment.get("schedules") or []]
                done = {
                    plan.CRON_EDIT: edit.cron in crons,
                    plan.DISABLE: deployment.get("paused") is True,
                    plan.ENABLE: deployment.get("paused") is False,
                }[edit.change]
            if done:
                index = self.configs.index(config)
                settled = now_utc()
                self.configs[index] = RowConfig(**{**config.__dict__, "settled": settled})
                self.note(
                    "edit settled",
                    row=config.row_id,
                    change=edit.change,
                    after_s=round((settled - config.start).total_seconds(), 1),
                )
            return done

        return act

    # -- faults ------------------------------------------------------------------------------

    def inject(self, fault: plan.Fault) -> None:
        stack = self.stack
        worker = stack.workers[fault.target % len(stack.workers)]
        self.note(
            "fault",
            kind=fault.kind,
            target=worker.name if "worker" in fault.kind else None,
            planned_at_s=round(fault.at_s, 1),
        )
        if fault.kind == plan.WORKER_SIGKILL:
            worker.kill_tree()
        elif fault.kind == plan.WORKER_SIGTERM:
            worker.terminate()
        elif fault.kind == plan.WATCHER_SIGKILL:
            assert stack.watcher is not None
            stack.watcher.kill_tree()
        elif fault.kind == plan.POSTGRES_RESTART:
            assert stack.postgres is not None
            stack.postgres.interrupt()
        elif fault.kind == plan.PREFECT_RESTART:
            assert stack.prefect is not None
            stack.prefect.terminate()
        elif fault.kind == plan.API_SIGKILL:
            assert stack.api is not None
            stack.api.kill_tree()
            self.api_down.append((now_utc(), now_utc() + timedelta(seconds=120)))
        elif fault.kind == plan.POOL_PAUSE:
            self.pending.append(Pending("pause the pool", time.monotonic(), self.pool_paused(True)))
            self.pending.append(
                Pending(RESUME_POOL, time.monotonic() + plan.POOL_PAUSE_S, self.pool_paused(False))
            )
        elif fault.kind == plan.MEMORY_FILL:
            self.pending.append(
                Pending(
                    "memory fill", time.monotonic(), self.leak_run(), give_up=time.monotonic() + 120
                )
            )

    def pool_paused(self, paused: bool) -> Callable[[], bool]:
        def act() -> bool:
            try:
                response = self.prefect("PATCH", f"/work_pools/{POOL}", json={"is_paused": paused})
            except httpx.HTTPError:
                return False
            if response.status_code < 300:
                self.note("pool " + ("paused" if paused else "resumed"))
                return True
            return False

        return act

    def leak_run(self) -> Callable[[], bool]:
        leak_row = self.row_ids[-1]
        deployment = next((d for d, r in self.deployment_rows.items() if r == leak_row), None)

        def act() -> bool:
            if deployment is None:
                return True
            try:
                response = self.prefect(
                    "POST", f"/deployments/{deployment}/create_flow_run", json={}
                )
            except httpx.HTTPError:
                return False
            if response.status_code < 300:
                self.injected.add(str(response.json()["id"]))
                self.note("leak run created", run=response.json()["id"])
                return True
            return False

        return act

    # -- the loop ----------------------------------------------------------------------------

    def tick(self) -> None:
        now = time.monotonic()
        for service in self.stack.services():
            before = service.starts
            service.tick(now)
            if service.starts != before:
                self.note("restarted", service=service.name, exit_codes=service.exits[-1:])
                if service is self.stack.api:
                    self.api_down.append(
                        (now_utc() - timedelta(seconds=5), now_utc() + timedelta(seconds=60))
                    )
        for action in list(self.pending):
            if now < action.due:
                continue
            done = False
            try:
                done = action.act()
            except Exception as exc:  # an action must not stop the soak
                logger.warning("%s: %s", action.name, exc)
            if done or now > action.give_up:
                self.pending.remove(action)
                if not done:
                    self.note("gave up", action=action.name)

    def run_for(self, seconds: float, every: Callable[[], None] | None = None) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.tick()
            if every is not None:
                every()
            time.sleep(TICK_S)

    def wait_until(self, check: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout_s:g} s")
            self.tick()
            time.sleep(TICK_S)

    # -- the whole soak ----------------------------------------------------------------------

    def start(self) -> None:
        stack = self.stack
        stack.start_postgres()
        self.wait_until(stack.postgres_ready, 60, "PostgreSQL up")
        stack.create_databases()
        stack.start_prefect()
        self.wait_until(stack.prefect_ready, START_TIMEOUT_S, "the Prefect server up")
        self.insert_rows()
        stack.start_jobctl()

        def deployed() -> bool:
            try:
                found = self.read_deployments()
            except httpx.HTTPError:
                return False
            names = {d["name"]: d["id"] for d in found}
            for row_id in self.row_ids:
                if f"schedule-{row_id}" in names:
                    self.deployment_rows[str(names[f"schedule-{row_id}"])] = row_id
            return len(self.deployment_rows) == len(self.row_ids)

        self.wait_until(deployed, START_TIMEOUT_S, "every row deployed")
        self.wait_until(stack.api_ready, START_TIMEOUT_S, "the API up")
        self.note("stack up", deployments=len(self.deployment_rows))

    def window(self) -> None:
        """The faults, the edits and the call-job client, for ``minutes``.

        It opens as soon as the stack is up: fire times before it belong to the start."""
        duration_s = self.minutes * 60
        opening = now_utc()
        self.window_start = opening
        started = time.monotonic()
        faults = plan.faults(self.seed, duration_s)
        self.note("window opens", faults_planned=len(faults))
        for edit in plan.edits():
            at = opening + timedelta(seconds=edit.at_fraction * duration_s)
            at = at.replace(second=EDIT_SECOND, microsecond=0) + (
                timedelta(minutes=1) if at.second > EDIT_SECOND else timedelta()
            )
            delay = (at - opening).total_seconds()
            if delay > duration_s - 30:
                continue  # a short soak: no edit in its last half-minute
            self.pending.append(
                Pending(f"edit {edit.change}", started + delay, self.edit_action(edit))
            )
        for fault in faults:
            self.pending.append(
                Pending(f"fault {fault.kind}", started + fault.at_s, self._injector(fault))
            )
        client = CallClient(self.stack.api_url, self.stack.api_token, self.seed)
        client.start()
        try:
            self.run_for(duration_s)
        finally:
            client.stop(wait=False)
        self.window_end = now_utc()
        # No fault outlasts the window: a pool paused near its end is resumed now.
        for action in self.pending:
            if action.name == RESUME_POOL:
                action.due = time.monotonic()
        self.wait_until(lambda: not client.running(), CALL_TIMEOUT_S + 10, "call-job client")
        self.calls = client.records
        self.note("window closes", calls=len(client.records))

    def _injector(self, fault: plan.Fault) -> Callable[[], bool]:
        def act() -> bool:
            self.inject(fault)
            return True

        return act

    def quiet(self) -> None:
        """Let the system settle: no fault, every service up, the pool resumed, until the
        account finds nothing left to settle (or MAX_QUIET_S)."""
        started = time.monotonic()
        self.note("quiet period")
        self.run_for(MIN_QUIET_S)
        while time.monotonic() - started < MAX_QUIET_S:
            if not self.pending and all(s.alive() for s in self.stack.services()):
                try:
                    left = account(self.facts()).violations
                except (httpx.HTTPError, psycopg.Error) as exc:
                    logger.info("not settled yet: %s", exc)
                else:
                    self.note("unsettled", count=len(left), first=[v.as_json() for v in left[:3]])
                    if not left:
                        break
            self.run_for(SETTLED_CHECK_S)
        self.note("quiet period ends", after_s=round(time.monotonic() - started))

    # -- facts ---------------------------------------------------------------------------------

    def read_runs(self) -> list[RunFact]:
        """The runs of the rows' deployments due before the end of the quiet period."""
        until = now_utc() + timedelta(minutes=1)
        found: list[RunFact] = []
        seen: set[str] = set()
        ids = list(self.deployment_rows)
        offset = 0
        while True:
            page = self.prefect(
                "POST",
                "/flow_runs/filter",
                timeout_s=60,
                tries=5,
                json={
                    # Not through the deployment: a deleted row's runs stay, its deployment not.
                    "flow_runs": {
                        "deployment_id": {"any_": ids},
                        "expected_start_time": {"before_": until.isoformat()},
                    },
                    "limit": 200,
                    "offset": offset,
                    # Unique, so pages neither repeat nor skip runs: 32 runs share each
                    # expected start time, and paging by it read some twice, others never
                    # (seed 18: 5 fire times "executed twice" by one run, 8 "unaccounted").
                    "sort": "ID_DESC",
                },
            )
            page.raise_for_status()
            runs = page.json()
            offset += len(runs)
            for run in runs:
                state = run.get("state") or {}
                if str(run["id"]) in seen:
                    continue  # a run created meanwhile pushed this one onto the next page
                seen.add(str(run["id"]))
                found.append(
                    RunFact(
                        id=str(run["id"]),
                        row_id=self.deployment_rows[str(run["deployment_id"])],
                        expected_start=datetime.fromisoformat(run["expected_start_time"]),
                        auto_scheduled=bool(run.get("auto_scheduled")),
                        state_type=str(state.get("type", "")),
                        state_name=str(state.get("name", "")),
                        state_message=str(state.get("message") or ""),
                        run_count=int(run.get("run_count") or 0),
                    )
                )
            if len(runs) < 200:
                return found

    def facts(self) -> Facts:
        runs = self.read_runs()
        with psycopg.connect(self.stack.dsn()) as conn:
            attempts = [
                AttemptFact(
                    flow_run_id=str(r[0]), attempt=int(r[1] or 1), status=str(r[2]), error=r[3]
                )
                for r in conn.execute(
                    'SELECT "flowRunId", attempt, status::text, error FROM "JobHistory" '
                    'WHERE "flowRunId" IS NOT NULL'
                )
            ]
            missed = [
                (str(r[0]), r[1])
                for r in conn.execute('SELECT "scheduleId", "dueAt" FROM jobctl_missed_run')
            ]
            rows = {
                str(r[0]): bool(r[1])
                for r in conn.execute('SELECT id, "isActive" FROM "JobSchedule"')
            }
        deployments = [
            DeploymentFact(row_id=d["name"].removeprefix("schedule-"), paused=bool(d.get("paused")))
            for d in self.read_deployments()
            if d["name"].startswith("schedule-")
        ]
        calls = [self._call_fact(record) for record in self.calls]
        return Facts(
            window_start=self.window_start,
            window_end=self.window_end,
            configs=self.configs,
            runs=runs,
            attempts=attempts,
            missed=missed,
            rows=rows,
            deployments=deployments,
            calls=calls,
            injected_runs=frozenset(self.injected),
            prefetch_s=PREFETCH_S,
            deletion_lookback_s=DELETION_LOOKBACK_S,
        )

    def _call_fact(self, record: CallRecord) -> CallFact:
        down = any(start <= record.ended and record.started <= end for start, end in self.api_down)
        return CallFact(
            at=record.started,
            job=record.job,
            status=record.status,
            flow_run_id=record.flow_run_id,
            detail=record.detail,
            api_down=down,
        )


def faults_by_kind(events: list[Event]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in events:
        if event.what == "fault":
            kind = str(event.detail["kind"])
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def restarts(services: list[Service]) -> dict[str, int]:
    return {service.name: service.starts - 1 for service in services}


def run(seed: int, minutes: float, row_count: int) -> dict[str, Any]:
    """A whole soak; its result (the account and what was done), as JSON-ready data."""
    for pid in leftovers_of_dead_soaks():
        logger.info("ending process %s left by a killed soak", pid)
    stack = new_stack()
    soak = Soak(seed, minutes, row_count, stack, stack.home / "events.jsonl")
    began = time.monotonic()
    result: dict[str, Any] = {
        "seed": seed,
        "minutes": minutes,
        "rows": row_count,
        "logs": str(stack.home),
    }
    try:
        soak.start()
        soak.window()
        soak.quiet()
        facts = soak.facts()
        found: Account = account(facts)
        result.update(
            window_start=soak.window_start.isoformat(),
            window_end=soak.window_end.isoformat(),
            faults=faults_by_kind(soak.events),
            restarts=restarts(stack.services()),
            account=found.as_json(),
            edits=[e.as_json() for e in soak.events if e.what.startswith("edit")],
        )
    finally:
        result["timeline"] = [e.as_json() for e in soak.events]
        result["wall_s"] = round(time.monotonic() - began)
        stack.stop()
        end_leftovers(os.getpid())
        remove_data(stack)
    return result


def leftovers_of_dead_soaks() -> list[int]:
    """End the processes of a soak that was killed (its marker names a dead pid)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(MARKER.encode() + b"="):
                owner = int(item.split(b"=", 1)[1] or 0)
                if owner and not Path(f"/proc/{owner}").exists():
                    found.append(int(entry.name))
    processes.end(found, grace_s=3)
    return found
