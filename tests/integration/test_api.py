"""The HTTP API in-process (httpx over ASGI) on SQLite and PostgreSQL, with a real Prefect server.

Every response a test here receives is checked for a traceback and for the settings'
database URL and token (``ApiClient``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis.errors import Unsatisfiable
from prefect.client.schemas.objects import StateType
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_CLIENT_MAX_RETRIES,
    PREFECT_SERVER_EPHEMERAL_ENABLED,
    temporary_settings,
)
from schemathesis.core.result import Ok

from deployments.manual import manual_deployment_name
from jobctl import db, migrate
from jobctl.api.app import create_app
from jobctl.models import JobStatus
from jobctl.processes import descendants
from jobctl.records import Attempt, HistoryFilter, Schedule, ScheduleSpec
from jobctl.repository import Repository
from jobctl.settings import Settings
from jobs import examples
from tests.conftest import ScheduleFactory
from tests.fixtures.api import (
    MAX_BODY_BYTES,
    ORIGINAL_PARAM,
    ORIGINAL_REQUEST,
    TOKEN,
    ApiClient,
    assert_discloses_nothing,
    auth,
    chunked,
    count_manual_runs,
    flow_name_of,
    prefect_api_url,
    read_flow_run,
    read_manual_deployment,
    with_current_prefect_settings,
)
from tests.fixtures.prefect import WorkerFactory
from tests.fixtures.processes import free_port, wait_for
from tests.fixtures.sync import SyncTarget

pytestmark = pytest.mark.usefixtures("prefect_server")

ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)
ON_POSTGRES = pytest.mark.parametrize(
    "database_url", ["postgresql"], ids=["postgres"], indirect=True
)

JSON_HEADERS = {"Content-Type": "application/json"}
API_USER = "api"
RUN_TIMEOUT_S = 120
UNKNOWN_SCHEDULE_IDS = [str(uuid4()), "not-a-uuid"]
SCHEDULE_BODY: dict[str, Any] = {
    "cron": "*/5 * * * *",
    "jobName": "processData",
    "param": ["alpha", "beta"],
    "isActive": True,
    "description": "every five minutes",
    "priority": 1,
    "timeout": 30_000,
    "maxRetries": 2,
    "timezone": "Europe/Berlin",
    "retryDelay": 1_000,
    "retryBackoff": "exponential",
    "overlap": "skip",
    "misfireGrace": 60_000,
    "alertTo": "custom-webhook/oncall",
}


# -- fixtures ------------------------------------------------------------------------------


def _recorder_writing_to(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Name ``database_url`` in JOBCTL_DATABASE_URL, as ``jobctl api``'s environment would.

    ``create_app(settings)`` points the process's history recorder at its own database,
    so a test can also name another database here and check that it is ignored.
    """
    monkeypatch.setenv("JOBCTL_DATABASE_URL", database_url)
    yield database_url


@pytest.fixture
def recorder_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The flows of this process record history in this test's database (as ``jobctl api``
    does: its environment names the same database as its settings)."""
    yield from _recorder_writing_to(database_url, monkeypatch)


@pytest.fixture
def api_settings(database_url: str, work_pool_name: str) -> Settings:
    return Settings(api_token=TOKEN, database_url=database_url, work_pool=work_pool_name)


def _client(settings: Settings, *secrets: str) -> ApiClient:
    return ApiClient(create_app(settings), secrets=(settings.database_url, TOKEN, *secrets))


@pytest.fixture
def api(api_settings: Settings, recorder_database: str) -> Iterator[ApiClient]:
    client = _client(api_settings)
    yield client
    client.shutdown()


@dataclass(frozen=True)
class Snapshot:
    """What a request could have changed: runs submitted to the workers, history (runs
    in the API's process among them), schedules."""

    manual_runs: int
    history: list[Attempt]
    schedules: list[Schedule]


def _snapshot(repo: Repository, work_pool_name: str) -> Snapshot:
    return Snapshot(count_manual_runs(work_pool_name), _history(repo), repo.list_schedules())


def _history(repo: Repository) -> list[Attempt]:
    return repo.list_history(HistoryFilter(limit=1000))


def _call(method_name: str, param: Any = None, **extra: Any) -> dict[str, Any]:
    return {"methodName": method_name, "param": param, **extra}


def _wait_final(flow_run_id: str) -> StateType:
    def final() -> StateType | None:
        state = read_flow_run(flow_run_id).state
        return state.type if state is not None and state.is_final() else None

    return wait_for(final, timeout_s=RUN_TIMEOUT_S, interval_s=0.5, what=f"run {flow_run_id}")


# The three ways of asking for a run: in this process, and submitted to the workers (twice).
RUN_REQUESTS = {
    "call-job": ("/v1/job/call-job", {}),
    "call-job-no-wait": ("/v1/job/call-job", {"wait": False}),
    "runs": ("/v1/job/runs", {}),
}


def _ask_for_runs(api: ApiClient, method_name: str, param: Any) -> dict[str, httpx.Response]:
    # Python's JSON writer, not httpx's: it writes NaN and Infinity as a client might.
    return {
        name: api.post(
            path, content=json.dumps(_call(method_name, param, **extra)), headers=JSON_HEADERS
        )
        for name, (path, extra) in RUN_REQUESTS.items()
    }


# -- POST /v1/job/call-job: runs in the API process ----------------------------------------


def test_the_original_example_request_runs_process_data_as_a_flow_run_and_records_one_success(
    api: ApiClient, repo: Repository
) -> None:
    response = api.post("/v1/job/call-job", content=ORIGINAL_REQUEST, headers=JSON_HEADERS)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "status": "SUCCESS",
        "result": examples.process_data(ORIGINAL_PARAM, API_USER),
        "error": None,
        "flowRunId": body["flowRunId"],
        "historyId": body["historyId"],
    }
    [row] = _history(repo)
    assert row.id == body["historyId"]
    assert row.status is JobStatus.SUCCESS
    assert (row.job_name, row.param, row.schedule_id) == ("processData", ORIGINAL_PARAM, None)
    assert row.flow_run_id == body["flowRunId"]
    assert row.error is None and row.end_at is not None
    run = read_flow_run(body["flowRunId"])
    assert run.state is not None and run.state.type is StateType.COMPLETED
    assert flow_name_of(run) == "processData"
    assert run.deployment_id is None  # ran here, not on a worker
    assert run.parameters == {"param": ORIGINAL_PARAM, "user": API_USER}


@ON_SQLITE
def test_call_job_records_history_in_the_database_of_the_apps_settings(
    api_settings: Settings, repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``create_app(settings)``: the settings name the database, not the environment."""
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere' / 'jobctl.db'}"
    engine = db.create_db_engine(elsewhere)
    migrate.upgrade(engine)
    recorder = _recorder_writing_to(elsewhere, monkeypatch)
    next(recorder)
    client = _client(api_settings, elsewhere)
    try:
        response = client.post("/v1/job/call-job", content=ORIGINAL_REQUEST, headers=JSON_HEADERS)

        assert response.status_code == 200, response.text
        assert len(Repository(engine).list_history(HistoryFilter())) == 0, (
            "history went to JOBCTL_DATABASE_URL instead of the app's settings.database_url"
        )
        [row] = _history(repo)
        assert row.status is JobStatus.SUCCESS
        assert response.json()["historyId"] == row.id
    finally:
        client.shutdown()
        next(recorder, None)
        engine.dispose()


def test_a_job_that_raises_answers_424_failed_with_its_error_and_records_one_failure(
    api: ApiClient, repo: Repository
) -> None:
    response = api.post("/v1/job/call-job", json=_call("fail", "boom on purpose"))

    assert response.status_code == 424, response.text
    body = response.json()
    assert body["status"] == "FAILED"
    assert body["result"] is None
    assert body["error"] == "DemoFailure: boom on purpose"
    [row] = _history(repo)
    assert (row.id, row.flow_run_id) == (body["historyId"], body["flowRunId"])
    assert row.status is JobStatus.FAILED
    assert (row.job_name, row.param, row.schedule_id) == ("fail", "boom on purpose", None)
    assert row.error is not None and row.error.startswith("DemoFailure: boom on purpose")
    run = read_flow_run(body["flowRunId"])
    assert run.state is not None and run.state.type is StateType.FAILED


@ON_SQLITE
def test_a_chunked_request_without_content_length_reaches_the_job_whole(
    api: ApiClient, repo: Repository
) -> None:
    response = api.post(
        "/v1/job/call-job", content=chunked(ORIGINAL_REQUEST, chunk_bytes=7), headers=JSON_HEADERS
    )

    assert response.status_code == 200, response.text
    assert response.json()["result"]["items"] == ORIGINAL_PARAM
    [row] = _history(repo)
    assert row.param == ORIGINAL_PARAM


# -- wait: false and POST /v1/job/runs: submitted to the manual deployment -----------------


@pytest.mark.parametrize("request_name", ["call-job-no-wait", "runs"])
def test_a_submitted_run_is_a_run_of_the_jobs_manual_deployment(
    api: ApiClient,
    repo: Repository,
    sync_target: SyncTarget,
    work_pool_name: str,
    request_name: str,
) -> None:
    sync_target.sync()
    deployment = read_manual_deployment("processData", work_pool_name)
    path, extra = RUN_REQUESTS[request_name]

    response = api.post(path, json=_call("processData", ORIGINAL_PARAM, **extra))

    assert response.status_code == 202, response.text
    body = response.json()
    assert body == {
        "status": "SUBMITTED",
        "flowRunId": body["flowRunId"],
        "deployment": manual_deployment_name("processData", work_pool_name),
    }
    assert body["deployment"].startswith("processData/manual")
    run = read_flow_run(body["flowRunId"])
    assert run.deployment_id == deployment.id
    assert deployment.work_pool_name == work_pool_name
    assert flow_name_of(run) == "processData"
    assert run.parameters == {"param": ORIGINAL_PARAM, "user": API_USER}
    assert run.state is not None and not run.state.is_final()
    assert _history(repo) == []  # nothing ran in the API process


@ON_POSTGRES
def test_a_submitted_run_completes_on_a_worker_and_records_one_success(
    api: ApiClient,
    repo: Repository,
    sync_target: SyncTarget,
    start_worker: WorkerFactory,
    work_pool_name: str,
    database_url: str,
) -> None:
    sync_target.sync()
    worker = start_worker(work_pool_name, database_url=database_url)

    response = api.post("/v1/job/call-job", json=_call("processData", ORIGINAL_PARAM, wait=False))

    assert response.status_code == 202, response.text
    flow_run_id = response.json()["flowRunId"]
    assert _wait_final(flow_run_id) is StateType.COMPLETED, worker.log()[-3000:]
    [row] = _history(repo)
    assert (row.flow_run_id, row.status, row.schedule_id) == (flow_run_id, JobStatus.SUCCESS, None)
    assert (row.job_name, row.param) == ("processData", ORIGINAL_PARAM)


@ON_SQLITE
def test_submitting_before_the_first_sync_is_a_clear_error_not_500(
    api: ApiClient, repo: Repository, work_pool_name: str
) -> None:
    """No sync has created the manual deployments of this pool yet."""
    before = _snapshot(repo, work_pool_name)

    response = api.post("/v1/job/runs", json=_call("processData", ORIGINAL_PARAM))

    assert response.status_code in (404, 409, 503), response.text
    assert manual_deployment_name("processData", work_pool_name) in response.text
    assert _snapshot(repo, work_pool_name) == before


@ON_SQLITE
def test_submitting_while_prefect_is_unreachable_answers_503(api: ApiClient) -> None:
    with prefect_api_url(f"http://127.0.0.1:{free_port()}/api"):
        response = api.post("/v1/job/runs", json=_call("processData", ORIGINAL_PARAM))

    assert response.status_code == 503, response.text


@ON_SQLITE
def test_calling_a_job_while_prefect_is_unreachable_answers_503_not_500(api: ApiClient) -> None:
    """Found by the chaos soak (seed 1): call-job during a Prefect server restart answered
    500, the flow run could not be created (connection refused)."""
    with (
        prefect_api_url(f"http://127.0.0.1:{free_port()}/api"),
        temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}),
    ):
        response = api.post("/v1/job/call-job", json=_call("processData", ORIGINAL_PARAM))

    assert response.status_code == 503, response.text
    assert "Prefect" in response.json()["detail"]


@ON_SQLITE
def test_calling_a_job_without_a_prefect_api_url_answers_503_and_starts_no_server(
    api: ApiClient, repo: Repository
) -> None:
    """Prefect would run the job on an ephemeral API of its own: a uvicorn child that only
    a clean exit stops (it outlived a SIGTERM'd or SIGKILL'd `jobctl api`, its port held),
    whose runs no one else sees. `jobctl call` refused it already."""
    with temporary_settings(
        updates={PREFECT_SERVER_EPHEMERAL_ENABLED: True}, restore_defaults={PREFECT_API_URL}
    ):
        response = api.post("/v1/job/call-job", json=_call("processData", ORIGINAL_PARAM))

    assert response.status_code == 503, response.text
    assert "PREFECT_API_URL is not set" in response.json()["detail"]
    assert [command for _, command in descendants(os.getpid()) if "uvicorn" in command] == []
    assert _history(repo) == []


# -- who may run what ----------------------------------------------------------------------

NOT_JOBS = {
    "dunder-init": "__init__",
    "dunder-class": "__class__",
    "private": "_private",
    "sync-schedules-flow": "sync-schedules",
    "purge-history-flow": "purge-history",
    "run_here": "run_here",
    "empty": "",
    "10000-characters": "p" * 10_000,
    "other-case": "processdata",
    "leading-space": " processData",
    "nul": "processData\x00",
}


@pytest.mark.parametrize("method_name", NOT_JOBS.values(), ids=NOT_JOBS.keys())
def test_a_name_that_is_not_a_registered_job_answers_404_and_runs_nothing(
    api: ApiClient, repo: Repository, method_name: str, work_pool_name: str
) -> None:
    before = _snapshot(repo, work_pool_name)

    responses = _ask_for_runs(api, method_name, ORIGINAL_PARAM)

    assert {name: r.status_code for name, r in responses.items()} == dict.fromkeys(
        RUN_REQUESTS, 404
    ), {name: r.text[:300] for name, r in responses.items()}
    for response in responses.values():
        assert len(response.content) < 1_000  # the name is not echoed back whole
    assert _snapshot(repo, work_pool_name) == before


@ON_SQLITE
def test_a_name_over_10000_characters_is_refused_before_any_look_up(api: ApiClient) -> None:
    responses = _ask_for_runs(api, "p" * 10_001, None)

    assert {name: r.status_code for name, r in responses.items()} == dict.fromkeys(
        RUN_REQUESTS, 422
    )


PARAMS_THAT_DO_NOT_FIT = {
    "processData-object": ("processData", {"a": 1}),
    "processData-text": ("processData", "param1"),
    "processData-numbers": ("processData", [1, 2]),
    "fail-number": ("fail", 5),
    "sleep-text": ("sleep", "soon"),
    "httpCall-list": ("httpCall", ["http://127.0.0.1:9/"]),
    # Python's JSON reader takes them; no history row could store them.
    "sleep-nan": ("sleep", float("nan")),
    "sleep-infinity": ("sleep", float("inf")),
}


@pytest.mark.parametrize(
    ("method_name", "param"), PARAMS_THAT_DO_NOT_FIT.values(), ids=PARAMS_THAT_DO_NOT_FIT.keys()
)
def test_a_param_that_does_not_fit_the_jobs_signature_answers_422_and_runs_nothing(
    api: ApiClient,
    repo: Repository,
    sync_target: SyncTarget,
    method_name: str,
    param: Any,
    work_pool_name: str,
) -> None:
    sync_target.sync()  # the manual deployments exist: only validation stands in the way
    before = _snapshot(repo, work_pool_name)

    responses = _ask_for_runs(api, method_name, param)

    assert {name: r.status_code for name, r in responses.items()} == dict.fromkeys(
        RUN_REQUESTS, 422
    ), {name: r.text[:300] for name, r in responses.items()}
    for response in responses.values():
        errors = response.json()["detail"]
        assert isinstance(errors, list) and errors
        assert all(error["loc"][:2] == ["body", "param"] for error in errors), errors
        assert all(error["msg"] for error in errors)
    assert _snapshot(repo, work_pool_name) == before


# -- the bearer token ----------------------------------------------------------------------

SECURED_OPERATIONS = [
    ("POST", "/v1/job/call-job"),
    ("POST", "/v1/job/runs"),
    ("GET", "/v1/job/schedules"),
    ("POST", "/v1/job/schedules"),
    ("GET", "/v1/job/schedules/{schedule_id}"),
    ("PATCH", "/v1/job/schedules/{schedule_id}"),
    ("POST", "/v1/job/schedules/{schedule_id}/backfill"),
    ("DELETE", "/v1/job/schedules/{schedule_id}"),
    ("GET", "/v1/job/schedules/log"),
    ("GET", "/v1/job/schedules/{schedule_id}/log"),
    ("GET", "/v1/job/history"),
    ("GET", "/v1/job/history/{history_id}"),
    ("GET", "/v1/job/status"),
    ("GET", "/metrics"),
    ("POST", "/v1/job/pause"),
    ("GET", "/v1/job/pause"),
    ("POST", "/v1/job/resume"),
]


BACKFILL_DRY_RUN = {"from": "2025-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "dryRun": True}


@dataclass(frozen=True)
class Targets:
    """A schedule and a history row for the secured requests to aim at."""

    schedule_id: str
    history_id: int


@pytest.fixture
def targets(repo: Repository, schedule_factory: ScheduleFactory) -> Targets:
    schedule = repo.add_schedule(schedule_factory(cron="0 0 1 1 *", description="untouched"))
    history_id = repo.start_attempt(
        flow_run_id=str(uuid4()),
        attempt=1,
        job_name="processData",
        param=None,
        schedule_id=None,
    )
    return Targets(schedule.id, history_id)


def _secured_requests(targets: Targets) -> list[tuple[str, str, dict[str, Any]]]:
    """One request per secured operation (and both kinds of call-job), each one valid."""
    schedule = f"/v1/job/schedules/{targets.schedule_id}"
    return [
        ("POST", "/v1/job/call-job", {"content": ORIGINAL_REQUEST, "headers": JSON_HEADERS}),
        ("POST", "/v1/job/call-job", {"json": _call("processData", ORIGINAL_PARAM, wait=False)}),
        ("POST", "/v1/job/runs", {"json": _call("processData", ORIGINAL_PARAM)}),
        ("GET", "/v1/job/schedules", {}),
        ("POST", "/v1/job/schedules", {"json": {"cron": "0 0 * * *", "jobName": "processData"}}),
        ("GET", schedule, {}),
        ("PATCH", schedule, {"json": {"description": "changed"}}),
        ("GET", "/v1/job/schedules/log", {}),
        ("GET", f"{schedule}/log", {}),
        ("POST", f"{schedule}/backfill", {"json": BACKFILL_DRY_RUN}),
        ("DELETE", schedule, {}),
        ("GET", "/v1/job/history", {}),
        ("GET", f"/v1/job/history/{targets.history_id}", {}),
        ("GET", "/v1/job/status", {}),
        ("GET", "/metrics", {}),
        ("POST", "/v1/job/pause", {"json": {"reason": "maintenance", "until": "1h"}}),
        ("GET", "/v1/job/pause", {}),
        ("POST", "/v1/job/resume", {}),
    ]


def _send_all(
    api: ApiClient, requests: list[tuple[str, str, dict[str, Any]]], authorization: str | None
) -> dict[str, httpx.Response]:
    responses: dict[str, httpx.Response] = {}
    for method, path, kwargs in requests:
        headers = dict(kwargs.pop("headers", {}))
        if authorization is not None:
            headers["Authorization"] = authorization
        body = kwargs.get("json", {})
        key = f"{method} {path}" + (" wait=false" if body.get("wait") is False else "")
        responses[key] = api.request(method, path, headers=headers, **kwargs)
    return responses


@ON_SQLITE
def test_the_auth_tests_cover_every_operation_but_health(api: ApiClient) -> None:
    paths = api.app.openapi()["paths"]
    operations = {(method.upper(), path) for path, item in paths.items() for method in item}

    assert operations - set(SECURED_OPERATIONS) == {("GET", "/health")}
    assert set(SECURED_OPERATIONS) <= operations


WRONG_AUTHORIZATIONS = {
    "no-header": None,
    "wrong-token": "Bearer wrong",
    "empty-bearer": "Bearer ",
    "empty-header": "",
    "longer-token": f"Bearer {TOKEN}x",
    "shorter-token": f"Bearer {TOKEN[:-1]}",
    "other-scheme": f"Basic {TOKEN}",
    "token-without-scheme": TOKEN,
}


@pytest.mark.parametrize(
    "authorization", WRONG_AUTHORIZATIONS.values(), ids=WRONG_AUTHORIZATIONS.keys()
)
def test_every_endpoint_but_health_answers_401_without_the_right_bearer_token(
    api: ApiClient,
    repo: Repository,
    targets: Targets,
    authorization: str | None,
    work_pool_name: str,
) -> None:
    before = _snapshot(repo, work_pool_name)

    responses = _send_all(api.without_token(), _secured_requests(targets), authorization)

    statuses = {key: response.status_code for key, response in responses.items()}
    assert statuses == dict.fromkeys(statuses, 401), statuses
    assert _snapshot(repo, work_pool_name) == before  # nothing ran, nothing changed


def test_the_right_token_opens_every_endpoint(
    api: ApiClient, repo: Repository, targets: Targets, sync_target: SyncTarget
) -> None:
    sync_target.sync()

    responses = _send_all(api.without_token(), _secured_requests(targets), f"Bearer {TOKEN}")

    statuses = {key: response.status_code for key, response in responses.items()}
    assert all(200 <= status < 300 for status in statuses.values()), statuses
    assert repo.get_schedule_or_none(targets.schedule_id) is None  # the DELETE went through


# -- bodies: size and syntax ---------------------------------------------------------------


def _padded(body: bytes, size: int) -> bytes:
    """``body`` with trailing JSON whitespace up to ``size`` bytes."""
    assert len(body) <= size
    return body + b" " * (size - len(body))


def _oversized_bodies(schedule_id: str) -> dict[str, tuple[str, str, bytes]]:
    big = "x" * (MAX_BODY_BYTES + 1)
    return {
        "call-job": ("POST", "/v1/job/call-job", json.dumps(_call("processData", [big])).encode()),
        "call-job-no-wait": (
            "POST",
            "/v1/job/call-job",
            json.dumps(_call("processData", [big], wait=False)).encode(),
        ),
        "runs": ("POST", "/v1/job/runs", json.dumps(_call("processData", [big])).encode()),
        "add-schedule": (
            "POST",
            "/v1/job/schedules",
            json.dumps(
                {"cron": "0 0 * * *", "jobName": "processData", "description": big}
            ).encode(),
        ),
        "update-schedule": (
            "PATCH",
            f"/v1/job/schedules/{schedule_id}",
            json.dumps({"description": big}).encode(),
        ),
    }


@ON_SQLITE
@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_a_body_over_1_mib_answers_413_and_changes_nothing(
    api: ApiClient,
    repo: Repository,
    targets: Targets,
    sync_target: SyncTarget,
    transfer: str,
    work_pool_name: str,
) -> None:
    sync_target.sync()
    before = _snapshot(repo, work_pool_name)

    statuses: dict[str, int] = {}
    for name, (method, path, body) in _oversized_bodies(targets.schedule_id).items():
        content = chunked(body) if transfer == "chunked" else body
        response = api.request(method, path, content=content, headers=JSON_HEADERS)
        statuses[name] = response.status_code

    assert statuses == dict.fromkeys(statuses, 413), statuses
    assert _snapshot(repo, work_pool_name) == before


@ON_SQLITE
@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_a_body_of_exactly_1_mib_is_accepted(
    api: ApiClient, repo: Repository, transfer: str
) -> None:
    body = _padded(ORIGINAL_REQUEST, MAX_BODY_BYTES)
    content = chunked(body) if transfer == "chunked" else body

    response = api.post("/v1/job/call-job", content=content, headers=JSON_HEADERS)

    assert response.status_code == 200, response.text
    assert [row.status for row in _history(repo)] == [JobStatus.SUCCESS]


MALFORMED_BODIES = {
    "truncated": b"{",
    "not-json": b"not json",
    "broken-array": b'{"methodName": "processData", "param": [}',
    "empty": b"",
    "invalid-utf8": b"\xff\xfe\x00{",
    "array": b"[]",
    "null": b"null",
    "string": b'"processData"',
    "number": b"42",
    "name-not-text": b'{"methodName": ["processData"]}',
    "wait-not-boolean": b'{"methodName": "processData", "param": "p", "wait": "maybe"}',
    "nan": b'{"methodName": "processData", "param": [NaN]}',
    "deeply-nested": b'{"methodName": "processData", "param": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}",
}


@ON_SQLITE
@pytest.mark.parametrize("body", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
def test_a_malformed_body_answers_400_or_422_and_changes_nothing(
    api: ApiClient, repo: Repository, targets: Targets, body: bytes, work_pool_name: str
) -> None:
    before = _snapshot(repo, work_pool_name)
    endpoints = [
        ("POST", "/v1/job/call-job"),
        ("POST", "/v1/job/runs"),
        ("POST", "/v1/job/schedules"),
        ("PATCH", f"/v1/job/schedules/{targets.schedule_id}"),
    ]

    statuses = {
        f"{method} {path}": api.request(
            method, path, content=body, headers=JSON_HEADERS
        ).status_code
        for method, path in endpoints
    }

    assert all(status in (400, 422) for status in statuses.values()), statuses
    assert _snapshot(repo, work_pool_name) == before


@ON_SQLITE
@pytest.mark.parametrize(
    "body", [b"\xff\xfe{", b"[" * 100_000 + b"]" * 100_000], ids=["not-utf8", "deeply-nested"]
)
def test_a_body_that_cannot_be_parsed_answers_a_status_the_schema_documents(
    api: ApiClient, targets: Targets, body: bytes
) -> None:
    paths = api.app.openapi()["paths"]
    endpoints = [
        ("POST", "/v1/job/call-job", "/v1/job/call-job"),
        ("POST", "/v1/job/runs", "/v1/job/runs"),
        ("POST", "/v1/job/schedules", "/v1/job/schedules"),
        ("PATCH", f"/v1/job/schedules/{targets.schedule_id}", "/v1/job/schedules/{schedule_id}"),
    ]

    undocumented = {}
    for method, path, template in endpoints:
        response = api.request(method, path, content=body, headers=JSON_HEADERS)
        documented = set(paths[template][method.lower()]["responses"])
        if str(response.status_code) not in documented:
            undocumented[f"{method} {template}"] = (response.status_code, sorted(documented))

    assert undocumented == {}, undocumented


# -- /health -------------------------------------------------------------------------------


def test_health_needs_no_token_and_reports_the_database_and_prefect_ok(api: ApiClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = api.without_token().get("/health", headers=headers)

        assert response.status_code == 200, response.text
        assert response.json() == {"database": "ok", "prefect": "ok"}


def test_an_unreachable_database_answers_503_without_disclosing_its_url() -> None:
    password = "hunter2"
    url = f"postgresql+psycopg://jobctl:{password}@127.0.0.1:{free_port()}/jobctl"
    client = _client(Settings(api_token=TOKEN, database_url=url, work_pool="unused"), password)
    try:
        health = client.without_token().get("/health")
        schedules = client.get("/v1/job/schedules")
        history = client.get("/v1/job/history")
    finally:
        client.shutdown()

    assert health.status_code == 503, health.text
    assert health.json() == {"database": "unavailable", "prefect": "ok"}
    assert (schedules.status_code, history.status_code) == (503, 503), (
        schedules.text,
        history.text,
    )


@ON_SQLITE
def test_an_unreachable_prefect_api_makes_health_answer_503(api: ApiClient) -> None:
    with prefect_api_url(f"http://127.0.0.1:{free_port()}/api"):
        response = api.without_token().get("/health")

    assert response.status_code == 503, response.text
    assert response.json() == {"database": "ok", "prefect": "unavailable"}


# -- schedules -----------------------------------------------------------------------------


def _without_times(schedule: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schedule.items() if k not in ("id", "createdAt", "updatedAt")}


def test_a_schedule_added_through_the_api_is_stored_listed_and_read_back(
    api: ApiClient, repo: Repository
) -> None:
    response = api.post("/v1/job/schedules", json=SCHEDULE_BODY)

    assert response.status_code == 201, response.text
    created = response.json()
    assert _without_times(created) == {**SCHEDULE_BODY, "problems": []}
    stored = repo.get_schedule(created["id"])
    assert stored.spec() == ScheduleSpec(
        cron="*/5 * * * *",
        job_name="processData",
        param=["alpha", "beta"],
        is_active=True,
        description="every five minutes",
        priority=1,
        timeout_ms=30_000,
        max_retries=2,
        timezone="Europe/Berlin",
        retry_delay_ms=1_000,
        retry_backoff="exponential",
        overlap="skip",
        misfire_grace_ms=60_000,
        alert_to="custom-webhook/oncall",
    )
    minimal = api.post("/v1/job/schedules", json={"cron": "0 0 * * *", "jobName": "fail"})
    assert minimal.status_code == 201, minimal.text
    assert _without_times(minimal.json()) == {
        "cron": "0 0 * * *",
        "jobName": "fail",
        "param": None,
        "isActive": True,
        "description": None,
        "priority": None,
        "timeout": None,
        "maxRetries": None,
        "timezone": None,
        "retryDelay": None,
        "retryBackoff": "fixed",
        "overlap": "allow",
        "misfireGrace": None,
        "alertTo": None,
        "problems": [],
    }
    assert api.get(f"/v1/job/schedules/{created['id']}").json() == created
    listed = api.get("/v1/job/schedules")
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()] == [created["id"], minimal.json()["id"]]


def test_a_six_field_cron_with_zero_seconds_is_stored_as_five_fields(
    api: ApiClient, repo: Repository
) -> None:
    response = api.post("/v1/job/schedules", json={**SCHEDULE_BODY, "cron": "0 0 0 * * *"})

    assert response.status_code == 201, response.text
    assert response.json()["cron"] == "0 0 * * *"
    assert repo.get_schedule(response.json()["id"]).cron == "0 0 * * *"


INVALID_SCHEDULES = {
    "cron-out-of-range": ({"cron": "61 * * * *"}, "cron"),
    "cron-with-seconds": ({"cron": "*/10 * * * * *"}, "cron"),
    "cron-not-a-cron": ({"cron": "every day"}, "cron"),
    "unknown-job": ({"jobName": "noSuchJob"}, "jobName"),
    "dunder-job": ({"jobName": "__init__"}, "jobName"),
    "unknown-zone": ({"timezone": "Mars/Olympus"}, "timezone"),
    "too-many-retries": ({"maxRetries": 101}, "maxRetries"),
    "negative-timeout": ({"timeout": -1}, "timeout"),
    "unknown-backoff": ({"retryBackoff": "linear"}, "retryBackoff"),
    "unknown-overlap": ({"overlap": "sometimes"}, "overlap"),
    "unknown-field": ({"colour": "blue"}, "colour"),
}


@pytest.mark.parametrize(("change", "field"), INVALID_SCHEDULES.values(), ids=INVALID_SCHEDULES)
def test_an_invalid_schedule_answers_422_naming_the_field_and_writes_nothing(
    api: ApiClient, repo: Repository, targets: Targets, change: dict[str, Any], field: str
) -> None:
    before = repo.list_schedules()

    added = api.post("/v1/job/schedules", json={**SCHEDULE_BODY, **change})
    updated = api.patch(f"/v1/job/schedules/{targets.schedule_id}", json=change)

    for response in (added, updated):
        assert response.status_code == 422, response.text
        fields = [error["loc"][-1] for error in response.json()["detail"]]
        assert field in fields, response.text
    assert repo.list_schedules() == before


def test_a_missing_cron_or_job_name_answers_422(api: ApiClient, repo: Repository) -> None:
    for missing in ("cron", "jobName"):
        body = {k: v for k, v in SCHEDULE_BODY.items() if k != missing}

        response = api.post("/v1/job/schedules", json=body)

        assert response.status_code == 422, response.text
        assert missing in [error["loc"][-1] for error in response.json()["detail"]]
    assert repo.list_schedules() == []


def test_patch_changes_only_the_fields_it_names(api: ApiClient, repo: Repository) -> None:
    created = api.post("/v1/job/schedules", json=SCHEDULE_BODY).json()

    response = api.patch(
        f"/v1/job/schedules/{created['id']}",
        json={"description": "changed", "maxRetries": 5, "cron": "0 0 0 * * *"},
    )

    assert response.status_code == 200, response.text
    updated = response.json()
    expected = {**created, "description": "changed", "maxRetries": 5, "cron": "0 0 * * *"}
    assert {**updated, "updatedAt": None} == {**expected, "updatedAt": None}
    stored = repo.get_schedule(created["id"])
    assert (stored.description, stored.max_retries, stored.cron) == ("changed", 5, "0 0 * * *")
    assert (stored.param, stored.timezone, stored.overlap) == (
        ["alpha", "beta"],
        "Europe/Berlin",
        "skip",
    )

    cleared = api.patch(f"/v1/job/schedules/{created['id']}", json={"description": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json() == {
        **updated,
        "description": None,
        "updatedAt": cleared.json()["updatedAt"],
    }

    unchanged = api.patch(f"/v1/job/schedules/{created['id']}", json={})
    assert unchanged.status_code == 200, unchanged.text
    assert unchanged.json() == cleared.json()


def test_delete_answers_204_and_the_schedule_is_gone(api: ApiClient, repo: Repository) -> None:
    created = api.post("/v1/job/schedules", json=SCHEDULE_BODY).json()
    path = f"/v1/job/schedules/{created['id']}"

    response = api.delete(path)

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert repo.get_schedule_or_none(created["id"]) is None
    assert api.get(path).status_code == 404
    assert api.delete(path).status_code == 404
    assert api.get("/v1/job/schedules").json() == []


@pytest.mark.parametrize("schedule_id", UNKNOWN_SCHEDULE_IDS, ids=["uuid", "not-a-uuid"])
def test_an_unknown_schedule_id_answers_404(
    api: ApiClient, repo: Repository, targets: Targets, schedule_id: str
) -> None:
    before = repo.list_schedules()
    path = f"/v1/job/schedules/{schedule_id}"

    statuses = [
        api.get(path).status_code,
        api.patch(path, json={"description": "changed"}).status_code,
        api.delete(path).status_code,
    ]

    assert statuses == [404, 404, 404]
    assert repo.list_schedules() == before


# -- history -------------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SeededHistory:
    ids: dict[str, int]  # a, b, c, d in the order they started
    schedule_id: str


@pytest.fixture
def seeded_history(repo: Repository) -> SeededHistory:
    """a: processData SUCCESS (schedule s); b: processData FAILED; c: fail FAILED (schedule s);
    d: sleep PROCESSING; one hour apart from T0."""
    schedule_id = str(uuid4())
    rows = [
        ("a", "processData", JobStatus.SUCCESS, schedule_id),
        ("b", "processData", JobStatus.FAILED, None),
        ("c", "fail", JobStatus.FAILED, schedule_id),
        ("d", "sleep", JobStatus.PROCESSING, None),
    ]
    ids: dict[str, int] = {}
    for hour, (name, job, status, schedule) in enumerate(rows):
        start_at = T0 + timedelta(hours=hour)
        flow_run_id = str(uuid4())
        ids[name] = repo.start_attempt(
            flow_run_id=flow_run_id,
            attempt=1,
            job_name=job,
            param=[name],
            schedule_id=schedule,
            start_at=start_at,
        )
        if status is not JobStatus.PROCESSING:
            repo.finish_attempt(
                flow_run_id=flow_run_id,
                attempt=1,
                status=status,
                job_name=job,
                param=[name],
                schedule_id=schedule,
                error="it failed" if status is JobStatus.FAILED else None,
                end_at=start_at + timedelta(minutes=1),
            )
    return SeededHistory(ids, schedule_id)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


HISTORY_QUERIES: dict[str, tuple[dict[str, Any], str]] = {
    "all": ({}, "dcba"),
    "job": ({"job": "processData"}, "ba"),
    "status": ({"status": "FAILED"}, "cb"),
    "job-and-status": ({"job": "processData", "status": "SUCCESS"}, "a"),
    "since": ({"since": _iso(T0 + timedelta(hours=1))}, "dcb"),
    "until": ({"until": _iso(T0 + timedelta(hours=2))}, "ba"),
    "since-and-until": (
        {"since": _iso(T0 + timedelta(hours=1)), "until": _iso(T0 + timedelta(hours=2))},
        "b",
    ),
    "naive-since-is-utc": ({"since": "2026-01-01T01:00:00"}, "dcb"),
    "since-with-offset": ({"since": "2026-01-01T02:00:00+01:00"}, "dcb"),
    "limit": ({"limit": 2}, "dc"),
    "limit-and-offset": ({"limit": 2, "offset": 2}, "ba"),
    "offset-past-the-end": ({"offset": 4}, ""),
    "unknown-job": ({"job": "noSuchJob"}, ""),
}


@pytest.mark.parametrize(("query", "expected"), HISTORY_QUERIES.values(), ids=HISTORY_QUERIES)
def test_history_filters(
    api: ApiClient, seeded_history: SeededHistory, query: dict[str, Any], expected: str
) -> None:
    response = api.get("/v1/job/history", params=query)

    assert response.status_code == 200, response.text
    by_id = {row_id: name for name, row_id in seeded_history.ids.items()}
    assert "".join(by_id[row["id"]] for row in response.json()) == expected


def test_history_filters_by_schedule_and_shows_every_field(
    api: ApiClient, repo: Repository, seeded_history: SeededHistory
) -> None:
    response = api.get("/v1/job/history", params={"schedule": seeded_history.schedule_id})

    assert response.status_code == 200, response.text
    rows = response.json()
    assert [row["id"] for row in rows] == [seeded_history.ids["c"], seeded_history.ids["a"]]
    c = rows[0]
    stored = repo.get_attempt(seeded_history.ids["c"])
    assert c == {
        "id": stored.id,
        "jobName": "fail",
        "param": ["c"],
        "status": "FAILED",
        "error": "it failed",
        "startAt": c["startAt"],
        "endAt": c["endAt"],
        "scheduleId": seeded_history.schedule_id,
        "flowRunId": stored.flow_run_id,
        "attempt": 1,
        "peakMemoryBytes": None,
        "origin": None,
    }
    assert datetime.fromisoformat(c["startAt"]) == T0 + timedelta(hours=2)
    assert datetime.fromisoformat(c["endAt"]) == T0 + timedelta(hours=2, minutes=1)
    one = api.get(f"/v1/job/history/{stored.id}")
    assert one.status_code == 200 and one.json() == c


BAD_HISTORY_QUERIES = {
    "since-not-a-time": {"since": "yesterday"},
    "until-not-a-time": {"until": "2026-13-01"},
    "limit-zero": {"limit": 0},
    "limit-over-1000": {"limit": 1001},
    "negative-offset": {"offset": -1},
    "unknown-status": {"status": "DONE"},
}


@pytest.mark.parametrize("query", BAD_HISTORY_QUERIES.values(), ids=BAD_HISTORY_QUERIES)
def test_a_bad_history_query_answers_422(
    api: ApiClient, seeded_history: SeededHistory, query: dict[str, Any]
) -> None:
    response = api.get("/v1/job/history", params=query)

    assert response.status_code == 422, response.text


def test_an_unknown_history_id_answers_404(api: ApiClient, seeded_history: SeededHistory) -> None:
    unknown = max(seeded_history.ids.values()) + 1000

    assert api.get(f"/v1/job/history/{unknown}").status_code == 404
    assert api.get("/v1/job/history/0").status_code == 422
    assert api.get("/v1/job/history/abc").status_code == 422


def test_times_at_the_ends_of_the_calendar_never_answer_500(
    api: ApiClient, seeded_history: SeededHistory
) -> None:
    queries = [
        {"since": "0001-01-01T00:00:00+01:00"},
        {"until": "9999-12-31T23:59:59-01:00"},
        {"since": "0001-01-01T00:00:00"},
        {"until": "9999-12-31T23:59:59"},
    ]

    statuses = {
        json.dumps(query): api.get("/v1/job/history", params=query).status_code for query in queries
    }

    assert all(status in (200, 422) for status in statuses.values()), statuses


def test_text_with_a_nul_character_never_answers_500(api: ApiClient, targets: Targets) -> None:
    nul = "a\x00b"
    responses = {
        "get schedule": api.get("/v1/job/schedules/a%00b"),
        "history by job": api.get("/v1/job/history", params={"job": nul}),
        "history by schedule": api.get("/v1/job/history", params={"schedule": nul}),
        "add with description": api.post(
            "/v1/job/schedules", json={**SCHEDULE_BODY, "description": nul}
        ),
        "add with param": api.post("/v1/job/schedules", json={**SCHEDULE_BODY, "param": [nul]}),
        "update description": api.patch(
            f"/v1/job/schedules/{targets.schedule_id}", json={"description": nul}
        ),
    }

    statuses = {name: response.status_code for name, response in responses.items()}
    assert all(status < 500 for status in statuses.values()), statuses
    assert statuses["get schedule"] == 404
    assert responses["history by job"].json() == []


# -- the OpenAPI schema: schemathesis ------------------------------------------------------
#
# Driven through hypothesis directly: schemathesis' pytest integration (``from_fixture``)
# needs ``Node._nodeid``, which pytest 9.2 no longer has.

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
FUZZ_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the work tree
    phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time, curl shows the case
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


@pytest.fixture
def api_schema(api_settings: Settings, recorder_database: str) -> schemathesis.BaseSchema:
    """The app's own schema; schemathesis calls the app from a thread of its own."""
    app = with_current_prefect_settings(create_app(api_settings))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# Jobs a generated case must not start: one could sleep for years, the other call a
# generated URL. processData and fail are safe to run with any param.
UNSAFE_TO_RUN = {"sleep", "httpCall"}


def _skip_unsafe_runs(case: schemathesis.Case[Any]) -> None:
    name = case.body.get("methodName") if isinstance(case.body, dict) else None
    assume(not (isinstance(name, str) and name in UNSAFE_TO_RUN))


def _fuzz(
    schema: schemathesis.BaseSchema,
    check: Callable[[schemathesis.Case[Any]], None],
    plan: Mapping[schemathesis.GenerationMode, settings],
) -> tuple[dict[str, str], int]:
    """Run ``check`` on generated cases of every operation, in each mode of ``plan`` with
    its settings; returns the failures by operation and the number of cases run."""
    failures: dict[str, str] = {}
    cases_run = 0
    for mode, mode_settings in plan.items():
        for result in schema.get_all_operations():
            if not isinstance(result, Ok):
                failures[f"{mode.value} (schema)"] = str(result.err())
                continue
            operation = result.ok()

            @mode_settings
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case[Any]) -> None:
                nonlocal cases_run
                _skip_unsafe_runs(case)
                cases_run += 1
                check(case)

            try:
                run()
            except Unsatisfiable:
                # No negative case exists for an operation without constrained input.
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # every operation gets its run
                failures[f"{mode.value} {operation.label}"] = _described(exc)[:5000]
    return failures, cases_run


def _described(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "\n".join(_described(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def _shown(failures: dict[str, str]) -> str:
    return "\n\n".join(f"{operation}:\n{failure}" for operation, failure in failures.items())


@pytest.mark.reliability
@ON_SQLITE
def test_every_operation_conforms_to_its_openapi_schema(
    api_schema: schemathesis.BaseSchema,
    sync_target: SyncTarget,
    record_property: Callable[[str, object], None],
) -> None:
    """Done: schemathesis generates requests from the app's OpenAPI schema, valid and
    invalid, to every operation with the token. Checked: no 5xx, status codes, content
    types and bodies as the schema says, and no answer discloses the token or a trace."""
    sync_target.sync()  # submitted runs find their manual deployments

    def check(case: schemathesis.Case[Any]) -> None:
        response = case.call_and_validate(headers=auth(), checks=CHECKS)
        what = f"{case.operation.label} -> {response.status_code}"
        sent = f"{case.path_parameters!r} {case.query!r} {case.body!r}"
        headers = {name: ", ".join(values) for name, values in response.headers.items()}
        assert_discloses_nothing(what, response.text, headers, (TOKEN,), sent)

    failures, cases_run = _fuzz(
        api_schema,
        check,
        {
            schemathesis.GenerationMode.POSITIVE: FUZZ_SETTINGS,
            schemathesis.GenerationMode.NEGATIVE: settings(FUZZ_SETTINGS, max_examples=15),
        },
    )

    record_property("cases", cases_run)
    assert failures == {}, _shown(failures)
    assert cases_run > len(SECURED_OPERATIONS) * 25


# The Authorization header a fuzzed request carries (None: whatever schemathesis generates
# for the operation's optional ``authorization`` header, or none at all), and examples per
# operation.
UNAUTHENTICATED_HEADERS = {
    "empty": ({"Authorization": ""}, 10),
    "wrong-token": ({"Authorization": "Bearer wrong"}, 5),
    "generated": (None, 10),
}


@pytest.mark.reliability
@ON_SQLITE
@pytest.mark.parametrize(
    ("headers", "examples"), UNAUTHENTICATED_HEADERS.values(), ids=UNAUTHENTICATED_HEADERS
)
def test_without_a_token_every_secured_operation_answers_401(
    api_schema: schemathesis.BaseSchema,
    headers: dict[str, str] | None,
    examples: int,
    record_property: Callable[[str, object], None],
) -> None:
    """Done: schemathesis generates requests to every operation with an empty, a wrong or
    a generated Authorization header. Checked: every secured operation answers 401."""
    statuses: dict[str, set[int]] = {}
    generated: set[str] = set()

    def check(case: schemathesis.Case[Any]) -> None:
        if headers is None:  # a generated header is never the right token
            sent = {name.lower(): value for name, value in (case.headers or {}).items()}
            assume(TOKEN not in str(sent))
            generated.add(str(sent.get("authorization")))
        response = case.call(headers=headers)
        statuses.setdefault(case.operation.label, set()).add(response.status_code)
        if case.operation.path != "/health":
            assert response.status_code == 401, (case.operation.label, response.text)

    failures, cases_run = _fuzz(
        api_schema,
        check,
        {schemathesis.GenerationMode.POSITIVE: settings(FUZZ_SETTINGS, max_examples=examples)},
    )
    record_property("cases", cases_run)

    assert failures == {}, _shown(failures)
    assert statuses.pop("GET /health") <= {200}
    assert len(statuses) == len(SECURED_OPERATIONS)
    assert set().union(*statuses.values()) == {401}
    if headers is None:  # the fuzzer did send headers of its own, not only none
        assert len(generated - {"None"}) > 1, generated


@ON_SQLITE
def test_the_documented_outcomes_of_running_a_job_conform_to_the_schema(
    api_schema: schemathesis.BaseSchema, sync_target: SyncTarget
) -> None:
    sync_target.sync()
    call_job = api_schema["/v1/job/call-job"]["POST"]
    cases = {
        "success": (call_job.Case(body=_call("processData", ORIGINAL_PARAM)), 200),
        "failure": (call_job.Case(body=_call("fail", "boom")), 424),
        "submitted": (call_job.Case(body=_call("processData", ORIGINAL_PARAM, wait=False)), 202),
        "not a job": (call_job.Case(body=_call("__init__")), 404),
        "bad param": (call_job.Case(body=_call("processData", {"a": 1})), 422),
        "runs": (
            api_schema["/v1/job/runs"]["POST"].Case(body=_call("processData", ORIGINAL_PARAM)),
            202,
        ),
    }

    statuses = {
        name: case.call_and_validate(headers=auth(), checks=CHECKS).status_code
        for name, (case, _) in cases.items()
    }

    assert statuses == {name: status for name, (_, status) in cases.items()}
