"""The dead man's switch: pinged while the database, Prefect and a worker are healthy; not
once Prefect is down. A Prefect server of its own (it is stopped), a real process worker."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from pathlib import Path

import pytest

from jobctl.prefect import monitor
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.fixtures.http_target import HttpTarget
from tests.fixtures.prefect import WorkerFactory, running_prefect_server
from tests.fixtures.processes import wait_for
from tests.fixtures.zygote import Zygote

pytestmark = pytest.mark.parametrize(
    "database_url", ["postgresql"], ids=["postgres"], indirect=True
)

INTERVAL_S = 1.0
# The bound is two minutes; rounds every second stop pinging within seconds.
STOPS_WITHIN_S = 120.0
QUIET_S = 5.0


def test_the_heartbeat_is_pinged_while_healthy_and_stops_when_prefect_stops(
    repo: Repository,
    database_url: str,
    work_pool_name: str,
    http_target: HttpTarget,
    start_worker: WorkerFactory,
    zygote: Zygote,
    tmp_path: Path,
) -> None:
    settings = Settings(
        database_url=database_url,
        work_pool=work_pool_name,
        heartbeat_url=http_target.url("/ping"),
    )
    home = tmp_path / "prefect-home"
    home.mkdir()
    with running_prefect_server(home, zygote) as server:
        start_worker(work_pool_name, database_url=database_url, server=server)
        stop = threading.Event()
        context = contextvars.copy_context()  # Prefect's settings: this server's URL
        loop = threading.Thread(
            target=context.run,
            args=(
                asyncio.run,
                monitor.run(settings, repo, interval_s=INTERVAL_S, stopped=stop.is_set),
            ),
        )
        loop.start()
        try:
            wait_for(
                lambda: len(http_target.hits_of("/ping")) >= 3,
                timeout_s=90,
                what="three heartbeat pings while healthy",
            )
            server.stop()
            stopped_at = time.time()

            def quiet() -> bool:
                hits = http_target.hits_of("/ping")
                return time.time() - max(hit.at for hit in hits) >= QUIET_S

            wait_for(quiet, timeout_s=STOPS_WITHIN_S, what="the pings to stop")
            count = len(http_target.hits_of("/ping"))
            time.sleep(QUIET_S)  # a quiet window, measured: no ping may arrive in it
            assert len(http_target.hits_of("/ping")) == count
            last = max(hit.at for hit in http_target.hits_of("/ping"))
            assert last - stopped_at < STOPS_WITHIN_S
        finally:
            stop.set()
            loop.join(timeout=30)
        assert not loop.is_alive()
