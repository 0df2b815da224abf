"""The system under the soak, as production runs it (``deploy/env.example``).

A PostgreSQL cluster of the soak's own (initdb in a temporary folder, a free port: the
machine's shared cluster is never touched) holding the tables and the Prefect server's
database; ``prefect server start``; two ``jobctl-warm`` workers on one pool; the sync
watcher (``jobctl sync --watch``); ``jobctl api``. Each one a ``Service``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from bench.chaos.services import Service
from jobctl.cli.stack import SERVER_TUNING, WORKER_TUNING
from tests.fixtures.postgres_cluster import RUN_AS, PostgresCluster, _bin_dir
from tests.fixtures.processes import base_env, free_port

BIN = Path(sys.executable).parent
POOL = "jobctl-chaos"
POOL_CONCURRENCY = 20  # deploy/env.example
WORKERS = 2
# The reconciler's thresholds, shorter than production's so that a soak settles within a
# couple of minutes of its last fault; each stays above what a live run needs (a run is
# Pending for the workers' prefetch, 40 s, plus its start under load).
RECONCILER_TUNING = {
    "JOBCTL_RECONCILE_INTERVAL_S": 10,
    "JOBCTL_DEAD_RUN_GRACE_S": 20,
    "JOBCTL_PENDING_RUN_GRACE_S": 180,
}


@dataclass
class Stack:
    home: Path  # logs and Prefect's home; the data folder is removed at the end
    cluster: PostgresCluster
    api_token: str = field(default_factory=lambda: secrets.token_hex(16))
    prefect_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    postgres: Service | None = None
    prefect: Service | None = None
    watcher: Service | None = None
    workers: list[Service] = field(default_factory=list)
    api: Service | None = None

    @property
    def prefect_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def database_url(self) -> str:
        return self.cluster.url("jobctl")

    def dsn(self, database: str = "jobctl") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.cluster.port}/{database}"

    def services(self) -> list[Service]:
        found = [self.postgres, self.prefect, self.watcher, *self.workers, self.api]
        return [service for service in found if service is not None]

    # -- start-up ------------------------------------------------------------------------

    def start_postgres(self) -> None:
        self.cluster.init()
        self.postgres = Service(
            "postgres",
            [str(self.cluster.bin_dir / "postgres"), "-D", str(self.cluster.data_dir)],
            base_env(),
            self.home / "postgres.log",
            user=RUN_AS if os.geteuid() == 0 else None,
            death_signal=signal.SIGQUIT,  # PostgreSQL's immediate shutdown
        )
        self.postgres.start()

    def postgres_ready(self) -> bool:
        try:
            with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def create_databases(self) -> None:
        self.cluster.create_migrated_database("jobctl")
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute('CREATE DATABASE "prefect"')

    def jobctl_env(self, **extra: object) -> dict[str, str]:
        return base_env(
            PREFECT_API_URL=self.prefect_url,
            JOBCTL_DATABASE_URL=self.database_url,
            JOBCTL_WORK_POOL=POOL,
            JOBCTL_WORK_POOL_CONCURRENCY=POOL_CONCURRENCY,
            JOBCTL_API_TOKEN=self.api_token,
            **RECONCILER_TUNING,
            **extra,
        )

    def prefect_env(self) -> dict[str, str]:
        """The server's environment: ``deploy/env.example``'s server settings, as
        ``jobctl up`` sets them (``SERVER_TUNING``), on the soak's own database."""
        home = self.home / "prefect-home"
        home.mkdir(exist_ok=True)
        return base_env(
            **SERVER_TUNING,
            PREFECT_HOME=home,
            PREFECT_SERVER_API_HOST="127.0.0.1",
            PREFECT_SERVER_API_PORT=self.prefect_port,
            PREFECT_API_URL=self.prefect_url,
            PREFECT_UI_ENABLED="false",
            PREFECT_SERVER_DATABASE_CONNECTION_URL=(
                f"postgresql+asyncpg://postgres@127.0.0.1:{self.cluster.port}/prefect"
            ),
        )

    def start_prefect(self) -> None:
        args = [
            str(BIN / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.prefect_port),
        ]
        self.prefect = Service(
            "prefect-server", args, self.prefect_env(), self.home / "prefect-server.log"
        )
        self.prefect.start()

    def prefect_ready(self) -> bool:
        try:
            return httpx.get(f"{self.prefect_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start_jobctl(self) -> None:
        self.watcher = Service(
            "watcher",
            [str(BIN / "jobctl"), "sync", "--watch"],
            self.jobctl_env(),
            self.home / "watcher.log",
        )
        for index in range(WORKERS):
            args = [
                str(BIN / "prefect"),
                "worker",
                "start",
                "--pool",
                POOL,
                "--type",
                "jobctl-warm",
                "--name",
                f"chaos-worker-{index}",
            ]
            self.workers.append(
                Service(
                    f"worker-{index}",
                    args,
                    self.jobctl_env(**WORKER_TUNING),
                    self.home / f"worker-{index}.log",
                )
            )
        self.api = Service(
            "api",
            [str(BIN / "jobctl"), "api", "--host", "127.0.0.1", "--port", str(self.api_port)],
            self.jobctl_env(),
            self.home / "api.log",
        )
        for service in (self.watcher, *self.workers, self.api):
            service.start()

    def api_ready(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        for service in reversed(self.services()):
            service.stop()


def new_stack() -> Stack:
    """A stack whose PostgreSQL is not initialised yet; ``remove`` deletes its data."""
    bin_dir = _bin_dir()
    if bin_dir is None or shutil.which("runuser") is None:
        raise RuntimeError("PostgreSQL's server binaries (initdb, postgres) are not installed")
    home = Path(tempfile.mkdtemp(prefix="jobctl-chaos-"))
    os.chmod(home, 0o755)
    data_dir = home / "pgdata"
    data_dir.mkdir()
    shutil.chown(data_dir, RUN_AS, RUN_AS)
    return Stack(home=home, cluster=PostgresCluster(bin_dir, data_dir))


def remove_data(stack: Stack) -> None:
    shutil.rmtree(stack.cluster.data_dir, ignore_errors=True)
