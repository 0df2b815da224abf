"""The history queries as a user makes them: ``jobctl history`` and ``GET /v1/job/history``.

Timed on the large history of ``history_bench`` (no Prefect server needed): the CLI as a
fresh process each time (its start-up included, and ``jobctl --help`` for that start-up
alone), the API as a running ``jobctl api`` answering a keep-alive client.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench import processes
from tests.fixtures.processes import base_env, free_port

CLI_REPEATS = 3
API_REPEATS = 20
API_WARMUPS = 3
TOKEN = "bench-token"

# (what, CLI arguments, API query string)
QUERIES = (
    ("latest 50 attempts of 'processData'", ["--job", "processData", "--limit", "50"],
     {"job": "processData", "limit": "50"}),
    ("FAILED in the last 24 h (limit 1000)", ["--status", "failed", "--since", "24h",
     "--limit", "1000"], {"status": "FAILED", "limit": "1000"}),
)  # fmt: skip


def _median_s(call: Callable[[], object], repeats: int, warmups: int = 0) -> list[float]:
    for _ in range(warmups):
        call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def cli_timings(database_url: str) -> dict[str, list[float]]:
    """Seconds of each ``jobctl history`` query, a new process each time."""
    env = base_env(JOBCTL_DATABASE_URL=database_url)
    jobctl = str(processes.JOBCTL_BIN)

    def cli(*args: str) -> Callable[[], object]:
        return lambda: subprocess.run(
            [jobctl, *args], env=env, check=True, capture_output=True, timeout=120
        )

    timings = {"jobctl --help (start-up alone)": _median_s(cli("--help"), CLI_REPEATS)}
    for what, args, _ in QUERIES:
        timings[f"jobctl history: {what}"] = _median_s(cli("history", *args), CLI_REPEATS)
    return timings


def api_timings(database_url: str, log_dir: Path) -> dict[str, list[float]]:
    """Seconds of each ``GET /v1/job/history`` against a running ``jobctl api``."""
    port = free_port()
    env = base_env(JOBCTL_DATABASE_URL=database_url, JOBCTL_API_TOKEN=TOKEN)
    args = [str(processes.JOBCTL_BIN), "api", "--host", "127.0.0.1", "--port", str(port)]
    timings: dict[str, list[float]] = {}
    with processes.child(args, env, log_dir / "api.log") as api:
        base = f"http://127.0.0.1:{port}"
        processes.wait_until(lambda: _up(base), 60, "jobctl api", api)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            for what, _, query in QUERIES:
                params = dict(query)
                if "status" in params:
                    params["since"] = (datetime.now(UTC) - timedelta(hours=24)).isoformat()

                def get(params: dict[str, str] = params) -> None:
                    client.get("/v1/job/history", params=params, timeout=60).raise_for_status()

                timings[f"GET /v1/job/history: {what}"] = _median_s(get, API_REPEATS, API_WARMUPS)
    return timings


def _up(base: str) -> bool:
    """Listening: ``/health`` answers (503 here: no Prefect server, which these do not need)."""
    try:
        httpx.get(f"{base}/health", timeout=2)
    except httpx.HTTPError:
        return False
    return True


def median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)
