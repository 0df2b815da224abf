"""The chaos soak runs the Prefect server as a user does: with the server settings of
``deploy/env.example``, which ``jobctl up`` sets too (``SERVER_TUNING``)."""

from __future__ import annotations

from pathlib import Path

from bench.chaos.stack import Stack
from jobctl.cli.stack import SERVER_TUNING
from tests.fixtures.postgres_cluster import PostgresCluster

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "env.example"
# Where the server's database is: the soak's own cluster, not env.example's host.
WHERE = {"PREFECT_SERVER_DATABASE_CONNECTION_URL"}


def env_example_server_settings() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.startswith("PREFECT_SERVER_") and key not in WHERE:
            found[key] = value
    return found


def test_jobctl_up_sets_the_server_settings_of_env_example() -> None:
    assert SERVER_TUNING == env_example_server_settings()


def test_the_soaks_prefect_server_has_the_server_settings_of_env_example(tmp_path: Path) -> None:
    """Seed 18: the soak's server kept Prefect's 30 s slot wait and its leases in memory,
    and each server restart cancelled the runs of ``overlap`` rows taken before it."""
    stack = Stack(home=tmp_path, cluster=PostgresCluster(tmp_path / "bin", tmp_path / "data"))

    env = stack.prefect_env()

    wanted = env_example_server_settings()
    assert {key: env.get(key) for key in wanted} == wanted
    assert env["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"].endswith("lease_storage.filesystem")
