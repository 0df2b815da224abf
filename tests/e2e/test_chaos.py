"""The chaos soak, short: five minutes of overlapping faults, then the exact account.

``python -m bench chaos`` runs it for 30 minutes; this is the short version (about 6 minutes
alone: the stack's start, 5 minutes of faults, a quiet period that ends once the account
finds nothing left to settle). It owns everything it starts (a PostgreSQL cluster, a
Prefect server, ports) and never touches the shared cluster, so other tests run beside it.
"""

from __future__ import annotations

import json

import pytest

from bench.chaos import plan, soak

# It runs first, on one xdist worker, beside the rest of the suite. Seed 45 brings every
# kind of fault within the five minutes (seed 18, the 30-minute soak's, leaves the Prefect
# restart out of them).
pytestmark = [pytest.mark.reliability]

SEED = 45
MINUTES = 5.0
ROWS = 12  # every minute; the 30-minute soak has 32


@pytest.mark.timeout(1200)  # 5 minutes of faults, the start, a quiet period of 1 to 8
def test_five_minutes_of_overlapping_faults_leave_every_fire_time_accounted_for() -> None:
    """Done: 12 rows firing every minute (quick, failing with retries, near their timeout,
    overlap skip and queue), edited, disabled, enabled and deleted by plain SQL; two warm
    workers, the watcher and the API under a call-job client; the seed's faults (workers
    killed or stopped, the watcher and the API killed, PostgreSQL and the Prefect server
    restarted, the pool paused, a job filling memory), each process restarted as systemd
    would; then a quiet period.
    Checked: for every fire time at which a row was active exactly one of a finished run
    with true history, a skip on purpose or a reported missed run; no run executed twice,
    no history left PROCESSING, every attempt recorded, deployments match the rows, every
    call-job answered 200, 424 or 503 and every 200 has its SUCCESS row."""
    result = soak.run(SEED, MINUTES, ROWS)
    found = result["account"]
    assert found["fire_times_due"] >= ROWS * (MINUTES - 1), found
    assert set(result["faults"]) == set(plan.FAULT_KINDS), result["faults"]
    assert found["violations"] == [], json.dumps(found["violations"][:20], indent=1)
