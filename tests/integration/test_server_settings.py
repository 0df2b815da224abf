"""The Prefect server as jobctl runs it (``SERVER_TUNING``, ``deploy/env.example``) keeps
the runs of ``overlap`` rows through a restart of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.prefect import running_prefect_server
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.zygote import Zygote

pytestmark = pytest.mark.reliability

# The API version of the client that takes and starts runs (a worker, the engine): Prefect
# checks the leases of deployment concurrency slots for clients that renew them.
CLIENT = {"X-PREFECT-API-VERSION": "0.8.4", "User-Agent": "prefect/3.9.1 (API 0.8.4)"}


@pytest.fixture
def server(tmp_path: Path, zygote: Zygote) -> Iterator[PrefectServer]:
    """A server of its own (it is restarted), run as ``jobctl up`` runs it, on PostgreSQL:
    on SQLite it answers 503 "database is locked" under a full test run."""
    with running_prefect_server(tmp_path, zygote) as found:
        yield found


def post(server: PrefectServer, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{server.api_url}{path}", json=body, headers=CLIENT, timeout=30)
    response.raise_for_status()
    return response.json()


def test_a_run_taken_before_a_server_restart_starts_after_it(server: PrefectServer) -> None:
    """Done: a run of a deployment with a concurrency limit of 1 is taken (Pending, its
    slot leased), then the server, run with ``SERVER_TUNING``, is stopped and started
    again. Checked: the run is let start (Running). With the leases in the server's memory
    (Prefect's default; chaos soak, seed 18) it was cancelled, "Deployment concurrency slot
    lost during provisioning": its lease was gone and its slot still counted as taken."""
    flow = post(server, "/flows/", {"name": "overlap-queue"})
    deployment = post(
        server,
        "/deployments/",
        {
            "name": "queue-row",
            "flow_id": flow["id"],
            "concurrency_limit": 1,
            "concurrency_options": {"collision_strategy": "ENQUEUE"},
        },
    )
    run = post(server, f"/deployments/{deployment['id']}/create_flow_run", {})
    taken = post(server, f"/flow_runs/{run['id']}/set_state", {"state": {"type": "PENDING"}})
    assert (taken["status"], taken["state"]["type"]) == ("ACCEPT", "PENDING")

    server.stop()
    server.start()
    started = post(server, f"/flow_runs/{run['id']}/set_state", {"state": {"type": "RUNNING"}})

    assert (started["status"], started["state"]["type"]) == ("ACCEPT", "RUNNING"), started
