"""``jobctl api`` as a real process: the original example request over HTTP, and the bind guard."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from jobctl.models import JobStatus
from jobctl.records import HistoryFilter
from jobctl.repository import Repository
from jobs import examples
from tests.fixtures.api import ORIGINAL_PARAM, ORIGINAL_REQUEST, TOKEN, auth
from tests.fixtures.cli import JOBCTL, cli_env
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.processes import Child, free_port, wait_for

API_START_TIMEOUT_S = 60
CALL_TIMEOUT_S = 60
CLI_TIMEOUT_S = 60

ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)


def _start_api(
    *args: str, env: dict[str, str], tmp_path: Path, port: int, name: str = "api"
) -> Child:
    """``jobctl [args] api --port <port>``, run from ``tmp_path``; waits for /health."""
    child = Child(
        [str(JOBCTL), *args, "api", "--port", str(port)],
        env=env,
        log_path=tmp_path / f"{name}.log",
        cwd=tmp_path,  # a default ./.jobctl/ would land here, not in the work tree
    )

    def healthy() -> bool:
        if not child.alive():
            raise RuntimeError(f"jobctl api exited:\n{child.log()[-3000:]}")
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200

    try:
        wait_for(healthy, timeout_s=API_START_TIMEOUT_S, what="jobctl api /health")
    except BaseException:
        child.stop()
        raise
    return child


@pytest.fixture(scope="session")
def pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bytecode shared by the processes of the session (see ``cli_env``)."""
    return tmp_path_factory.mktemp("pycache")


def _api_env(
    prefect_server: PrefectServer, tmp_path: Path, pycache: Path, database_url: str | None
) -> dict[str, str]:
    """The environment of ``jobctl api``: the token, the test server, and the database
    (or no JOBCTL_DATABASE_URL at all)."""
    env = cli_env(
        database_url=database_url or "",
        home=tmp_path,
        pycache=pycache,
        PREFECT_API_URL=prefect_server.api_url,
        JOBCTL_API_TOKEN=TOKEN,
    )
    if database_url is None:
        del env["JOBCTL_DATABASE_URL"]
    return env


def _call_original_example(port: int) -> httpx.Response:
    """What ``curl -H 'Authorization: Bearer …' -H 'Content-Type: application/json' -d …`` sends."""
    return httpx.post(
        f"http://127.0.0.1:{port}/v1/job/call-job",
        content=ORIGINAL_REQUEST,
        headers={"Content-Type": "application/json", **auth()},
        timeout=CALL_TIMEOUT_S,
    )


@ON_SQLITE
def test_jobctl_api_answers_the_original_example_request_and_records_one_success(
    prefect_server: PrefectServer,
    database_url: str,
    repo: Repository,
    tmp_path: Path,
    pycache: Path,
) -> None:
    port = free_port()
    env = _api_env(prefect_server, tmp_path, pycache, database_url)
    api = _start_api(env=env, tmp_path=tmp_path, port=port)
    try:
        refused = httpx.post(
            f"http://127.0.0.1:{port}/v1/job/call-job",
            content=ORIGINAL_REQUEST,
            headers={"Content-Type": "application/json"},
            timeout=CALL_TIMEOUT_S,
        )
        response = _call_original_example(port)
    finally:
        api.stop()

    assert refused.status_code == 401, refused.text
    assert response.status_code == 200, f"{response.text}\n{api.log()[-3000:]}"
    body = response.json()
    assert body["status"] == "SUCCESS"
    assert body["result"] == examples.process_data(ORIGINAL_PARAM, "api")
    assert body["error"] is None
    [row] = repo.list_history(HistoryFilter())
    assert row.status is JobStatus.SUCCESS
    assert (row.job_name, row.param, row.schedule_id) == ("processData", ORIGINAL_PARAM, None)
    assert (row.id, row.flow_run_id) == (body["historyId"], body["flowRunId"])


@ON_SQLITE
def test_jobctl_api_with_the_database_url_option_records_history_in_that_database(
    prefect_server: PrefectServer,
    database_url: str,
    repo: Repository,
    tmp_path: Path,
    pycache: Path,
) -> None:
    """``jobctl --database-url URL api``: the option names the database, as it does for
    every other command; JOBCTL_DATABASE_URL is not set."""
    port = free_port()
    env = _api_env(prefect_server, tmp_path, pycache, None)
    api = _start_api("--database-url", database_url, env=env, tmp_path=tmp_path, port=port)
    try:
        response = _call_original_example(port)
    finally:
        api.stop()

    assert response.status_code == 200, f"{response.text}\n{api.log()[-3000:]}"
    assert [row.status for row in repo.list_history(HistoryFilter())] == [JobStatus.SUCCESS]
    assert response.json()["historyId"] is not None


@pytest.mark.parametrize(
    ("args", "env_host"),
    [(["--host", "0.0.0.0"], None), ([], "0.0.0.0")],
    ids=["option", "JOBCTL_API_HOST"],
)
def test_jobctl_api_refuses_a_non_loopback_address_without_a_token(
    tmp_path: Path, pycache: Path, args: list[str], env_host: str | None
) -> None:
    port = free_port()
    extra = {"JOBCTL_API_HOST": env_host} if env_host else {}
    database_url = f"sqlite:///{tmp_path / 'jobctl.db'}"
    env = cli_env(database_url=database_url, home=tmp_path, pycache=pycache, **extra)

    result = subprocess.run(
        [str(JOBCTL), "api", *args, "--port", str(port)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )

    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "0.0.0.0" in lines[0] and "JOBCTL_API_TOKEN" in lines[0]
    assert "Traceback" not in result.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
