"""Writing JobHistory from inside a job's flow run: one row per attempt.

The flow body records the start of each attempt and its outcome (Prefect fires no
``on_failure`` for an attempt that will be retried, so only the body sees those);
``on_crashed``, ``on_cancellation`` and ``on_failure`` hooks close attempts the body
could not. The first outcome written wins, so a hook replayed, or firing after the
body, changes nothing, except that a hook's failure replaces a SUCCESS (the run's
final state is the truth). A history write never fails a job: if the database is down the
error is logged and the sync's reconciler backfills the row from Prefect's states later.
"""

from __future__ import annotations

import logging
import os
import resource
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect import Flow
from prefect.client.schemas.objects import FlowRun, State
from prefect.context import FlowRunContext
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from jobctl import db, errors
from jobctl.models import JobStatus
from jobctl.policy import SCHEDULE_ID_ENV
from jobctl.prefect.outcomes import outcome_of
from jobctl.repository import Repository
from jobctl.settings import Settings

logger = logging.getLogger("jobctl.history")

TRACEBACK_LINES = 30


@dataclass(frozen=True)
class AttemptKey:
    flow_run_id: str
    attempt: int
    job_name: str
    param: Any
    schedule_id: str | None


def describe_exception(exc: BaseException) -> str:
    """``Type: message``, then the last lines of the traceback."""
    headline = f"{type(exc).__name__}: {exc}".rstrip(": ")
    lines = "".join(traceback.format_exception(exc)).rstrip().splitlines()
    tail = lines[-TRACEBACK_LINES:]
    if len(lines) > TRACEBACK_LINES:
        tail.insert(0, f"... ({len(lines) - TRACEBACK_LINES} earlier lines trimmed)")
    return headline + "\n\n" + "\n".join(tail)


def peak_memory_bytes() -> int:
    """Peak resident memory of this process (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class HistoryRecorder:
    """Settings are read at the first write: importing the flows never fails on them."""

    def __init__(self, settings: Callable[[], Settings] = Settings) -> None:
        self._settings = settings
        self._repository: Repository | None = None

    def use_repository(self, repository: Repository) -> None:
        """Record into ``repository`` from now on: a process that runs flows in-process
        (the API, `jobctl call`) is configured by its own settings, not the environment."""
        self._repository = repository

    @property
    def repository(self) -> Repository:
        if self._repository is None:
            self._repository = Repository(db.create_db_engine(self._settings().database_url))
        return self._repository

    def _write(self, what: str, key: AttemptKey, call: Any) -> None:
        try:
            call()
        except (errors.JobctlError, SQLAlchemyError, ValidationError) as exc:
            logger.warning(
                "history: could not record %s of run %s attempt %d (%s); "
                "the reconciler will backfill it",
                what, key.flow_run_id, key.attempt, exc,
            )  # fmt: skip

    def started(self, key: AttemptKey) -> None:
        self._write(
            "the start",
            key,
            lambda: self.repository.start_attempt(
                flow_run_id=key.flow_run_id,
                attempt=key.attempt,
                job_name=key.job_name,
                param=key.param,
                schedule_id=key.schedule_id,
            ),
        )

    def finished(
        self, key: AttemptKey, status: JobStatus, error: str | None = None, *, correct: bool = False
    ) -> None:
        self._write(
            "the end",
            key,
            lambda: self.repository.finish_attempt(
                flow_run_id=key.flow_run_id,
                attempt=key.attempt,
                status=status,
                job_name=key.job_name,
                param=key.param,
                schedule_id=key.schedule_id,
                error=error,
                peak_memory_bytes=peak_memory_bytes(),
                correct=correct,
            ),
        )

    # -- the state hooks (``flow``, ``flow_run``, ``state``) ------------------------------

    def on_ended_elsewhere(self, flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
        """Crash, cancellation, or a final failure (a timeout): close the attempt.

        The run's final state wins over a SUCCESS the body wrote: a timeout can run out
        after the job returned, before Prefect had the run Completed."""
        attempt = flow_run.run_count
        if attempt < 1 and not self._began_first_attempt(str(flow_run.id)):
            # Crashed before its first attempt began (its worker stopped while it was
            # Pending): no attempt to close. Writing attempt 1 here would take the row of
            # the attempt a retry runs later.
            return
        key = AttemptKey(
            flow_run_id=str(flow_run.id),
            attempt=max(attempt, 1),
            job_name=flow.name,
            param=(flow_run.parameters or {}).get("param"),
            schedule_id=schedule_id_of_this_process(),
        )
        status, error = outcome_of(state)
        self.finished(key, status, error, correct=True)

    def _began_first_attempt(self, flow_run_id: str) -> bool:
        """Attempt 1 has its PROCESSING row. A worker's crash hook holds the run as the
        worker took it (``run_count`` 0), whether or not its process then began it."""
        try:
            recorded = self.repository.recorded_attempts([flow_run_id])
        except (errors.JobctlError, SQLAlchemyError) as exc:
            logger.warning("history: could not read run %s (%s)", flow_run_id, exc)
            return False  # the reconciler closes the attempt from Prefect's record
        return recorded.get(flow_run_id, {}).get(1) is JobStatus.PROCESSING


def schedule_id_of_this_process() -> str | None:
    return os.environ.get(SCHEDULE_ID_ENV) or None


def current_attempt(job_name: str, param: Any) -> AttemptKey | None:
    """The attempt running in this flow run, or None outside a flow run (``.fn()``)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    run = context.flow_run
    return AttemptKey(
        flow_run_id=str(run.id),
        attempt=max(run.run_count, 1),
        job_name=job_name,
        param=param,
        schedule_id=schedule_id_of_this_process(),
    )
