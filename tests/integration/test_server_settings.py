"""The Prefect server as jobctl runs it (``SERVER_TUNING``, ``deploy/env.example``) keeps
the runs of ``overlap`` rows through a restart of its own."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobctl.cli.stack import SERVER_TUNING
from tests.fixtures.processes import Child, base_env, free_port, wait_for

pytestmark = pytest.mark.reliability

BIN = Path(sys.executable).parent
# The API version of the client that takes and starts runs (a worker, the engine): Prefect
# checks the leases of deployment concurrency slots for clients that renew them.
CLIENT = {"X-PREFECT-API-VERSION": "0.8.4", "User-Agent": "prefect/3.9.1 (API 0.8.4)"}


class Server:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.child: Child | None = None

    def start(self) -> None:
        env = base_env(
            **SERVER_TUNING,
            PREFECT_HOME=self.home,
            PREFECT_API_URL=self.api,
            PREFECT_UI_ENABLED="false",
        )
        args = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1"]
        self.child = Child(
            [*args, "--port", str(self.port)], env=env, log_path=self.home / "server.log"
        )
        wait_for(self.healthy, timeout_s=120, what="the Prefect server up")

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = httpx.post(f"{self.api}{path}", json=body, headers=CLIENT, timeout=30)
        response.raise_for_status()
        return response.json()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    found = Server(tmp_path)
    yield found
    found.stop()


def test_a_run_taken_before_a_server_restart_starts_after_it(server: Server) -> None:
    """Done: a run of a deployment with a concurrency limit of 1 is taken (Pending, its
    slot leased), then the server, run with ``SERVER_TUNING``, is stopped and started
    again. Checked: the run is let start (Running). With the leases in the server's memory
    (Prefect's default; chaos soak, seed 18) it was cancelled, "Deployment concurrency slot
    lost during provisioning": its lease was gone and its slot still counted as taken."""
    server.start()
    flow = server.post("/flows/", {"name": "overlap-queue"})
    deployment = server.post(
        "/deployments/",
        {
            "name": "queue-row",
            "flow_id": flow["id"],
            "concurrency_limit": 1,
            "concurrency_options": {"collision_strategy": "ENQUEUE"},
        },
    )
    run = server.post(f"/deployments/{deployment['id']}/create_flow_run", {})
    taken = server.post(f"/flow_runs/{run['id']}/set_state", {"state": {"type": "PENDING"}})
    assert (taken["status"], taken["state"]["type"]) == ("ACCEPT", "PENDING")

    server.stop()
    server.start()
    started = server.post(f"/flow_runs/{run['id']}/set_state", {"state": {"type": "RUNNING"}})

    assert (started["status"], started["state"]["type"]) == ("ACCEPT", "RUNNING"), started
