"""What a soak does and when, from its seed alone: the faults, the rows, the edits.

Everything random in a soak comes from here, so a seed replays the same faults at the
same offsets, on the same rows, with the same edits (the machine's timing still varies).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

WORKER_SIGKILL = "worker-sigkill"
WORKER_SIGTERM = "worker-sigterm"
WATCHER_SIGKILL = "watcher-sigkill"
POSTGRES_RESTART = "postgres-restart"
PREFECT_RESTART = "prefect-restart"
API_SIGKILL = "api-sigkill"
POOL_PAUSE = "pool-pause"
MEMORY_FILL = "memory-fill"
FAULT_KINDS = (
    WORKER_SIGKILL,
    WORKER_SIGTERM,
    WATCHER_SIGKILL,
    POSTGRES_RESTART,
    PREFECT_RESTART,
    API_SIGKILL,
    POOL_PAUSE,
    MEMORY_FILL,
)
MIN_GAP_S = 30.0
MAX_GAP_S = 90.0
POOL_PAUSE_S = 120.0


@dataclass(frozen=True)
class Fault:
    at_s: float  # seconds after the soak window opened
    kind: str
    target: int = 0  # which worker (0 or 1), for the worker faults

    def as_json(self) -> dict[str, Any]:
        return {"at_s": round(self.at_s, 1), "kind": self.kind, "target": self.target}


def faults(seed: int, duration_s: float) -> list[Fault]:
    """Every 30 to 90 s one or two distinct faults, until ``duration_s``."""
    rng = random.Random(seed)
    found: list[Fault] = []
    at = rng.uniform(MIN_GAP_S, MAX_GAP_S)
    while at < duration_s:
        for kind in rng.sample(FAULT_KINDS, rng.choice((1, 2))):
            found.append(Fault(at, kind, rng.randrange(2)))
        at += rng.uniform(MIN_GAP_S, MAX_GAP_S)
    return found


@dataclass(frozen=True)
class RowPlan:
    """A row to insert: the ``JobSchedule`` columns that differ from the defaults."""

    key: str  # a readable name: the row's description
    job: str
    param: Any
    cron: str = "* * * * *"
    timeout_ms: int | None = None
    max_retries: int = 0
    retry_delay_ms: int | None = None
    overlap: str = "allow"
    priority: int | None = None
    timezone: str | None = None


ZONES = (None, "Asia/Taipei", "America/New_York", "Europe/Berlin")
LEAK_ROW = "leak: fills memory until its timeout"
NEVER = "0 0 1 1 *"  # the leak row's cron: runs only when the injector asks


def rows(seed: int, count: int) -> list[RowPlan]:
    """``count`` rows firing every minute, of every kind, and the leak row (never due).

    In proportion: quick jobs (half), failing jobs with retries, jobs near their timeout,
    ``overlap = skip`` and ``queue`` rows whose job outlasts a minute now and then.
    """
    rng = random.Random(seed + 1)
    kinds = [
        lambda i: RowPlan(
            f"quick {i}",
            "processData",
            [f"item-{i}"],
            priority=rng.choice((None, 1, 5)),
            timezone=rng.choice(ZONES),
        ),
        lambda i: RowPlan(
            f"quick {i}",
            "processData",
            [f"item-{i}"],
            priority=rng.choice((None, 1, 5)),
            timezone=rng.choice(ZONES),
        ),
        lambda i: RowPlan(
            f"failing {i}",
            "fail",
            f"failure {i}",
            max_retries=rng.choice((0, 1, 2)),
            retry_delay_ms=2_000,
            timeout_ms=20_000,
        ),
        lambda i: RowPlan(
            f"near timeout {i}",
            "sleep",
            rng.choice((3.0, 4.0, 5.5)),
            timeout_ms=5_000,
            max_retries=1,
            retry_delay_ms=1_000,
        ),
        lambda i: RowPlan(f"overlap skip {i}", "sleep", rng.choice((20.0, 70.0)), overlap="skip"),
        lambda i: RowPlan(f"overlap queue {i}", "sleep", rng.choice((15.0, 40.0)), overlap="queue"),
    ]
    found = [kinds[i % len(kinds)](i) for i in range(count)]
    leak = RowPlan(LEAK_ROW, "leak", 40.0, cron=NEVER, timeout_ms=6_000)
    return [*found, leak]


# Plain-SQL edits, at fractions of the window, on the first quick rows.
CRON_EDIT = "cron"
DISABLE = "disable"
ENABLE = "enable"
DELETE = "delete"


@dataclass(frozen=True)
class Edit:
    at_fraction: float
    row: int  # index in ``rows``
    change: str  # cron, disable, enable, delete
    cron: str | None = None


def edits() -> list[Edit]:
    """A cron changed and changed back, a row disabled and enabled again, a row deleted."""
    return [
        Edit(0.2, 0, CRON_EDIT, "*/2 * * * *"),
        Edit(0.3, 1, DISABLE),
        Edit(0.45, 6, DELETE),
        Edit(0.6, 1, ENABLE),
        Edit(0.7, 0, CRON_EDIT, "* * * * *"),
    ]
