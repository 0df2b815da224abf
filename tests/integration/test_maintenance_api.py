"""The maintenance pause over HTTP, in-process, on SQLite and PostgreSQL: set, read, end;
who set it is the caller's name; /health says a pause is on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from jobctl.api.app import create_app
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.conftest import ScheduleFactory
from tests.fixtures.api import TOKEN, ApiClient

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture
def api(database_url: str, work_pool_name: str) -> Iterator[ApiClient]:
    settings = Settings(api_token=TOKEN, database_url=database_url, work_pool=work_pool_name)
    client = ApiClient(create_app(settings), secrets=(database_url, TOKEN))
    yield client
    client.shutdown()


def test_pause_read_and_resume_over_http(
    api: ApiClient, repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    on = repo.add_schedule(schedule_factory())
    off = repo.add_schedule(schedule_factory(is_active=False))
    assert api.get("/v1/job/pause").json() == {"paused": False, "pause": None}

    started = api.post("/v1/job/pause", json={"reason": "db upgrade", "until": "2h"})
    read = api.get("/v1/job/pause")
    again = api.post("/v1/job/pause", json={"reason": "other"})
    health = api.without_token().get("/health")

    assert started.status_code == 201, started.text
    body = started.json()
    assert body["paused"] is True and body["pause"]["reason"] == "db upgrade"
    assert body["pause"]["setBy"] == "api"  # the caller's name
    since = datetime.fromisoformat(body["pause"]["since"])
    until = datetime.fromisoformat(body["pause"]["until"])
    assert abs(since - datetime.now(UTC)) < timedelta(seconds=30)
    assert until - since == timedelta(hours=2)
    assert read.json() == body
    assert again.status_code == 409 and "already paused" in again.json()["detail"]
    assert health.status_code == 200
    assert health.json()["maintenance"] == {
        k: body["pause"][k] for k in ("reason", "setBy", "since", "until")
    }

    resumed = api.post("/v1/job/resume")
    twice = api.post("/v1/job/resume")

    assert resumed.status_code == 200
    assert resumed.json()["paused"] is False
    assert resumed.json()["pause"]["endedBy"] == "api"
    assert twice.json() == {"paused": False, "pause": None}
    assert "maintenance" not in api.without_token().get("/health").json()
    assert {r.id: r.is_active for r in repo.list_schedules()} == {on.id: True, off.id: False}


@pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"reason": "x", "until": "tomorrow"}, "neither an ISO-8601"),
        ({"reason": "x", "until": "2020-01-01T00:00:00Z"}, "already passed"),
        ({"reason": "   "}, "needs a reason"),
        ({"reason": ""}, "at least 1 character"),
        ({}, "Field required"),
    ],
)
def test_a_bad_pause_is_refused_with_422_and_pauses_nothing(
    api: ApiClient, repo: Repository, body: dict[str, str], detail: str
) -> None:
    response = api.post("/v1/job/pause", json=body)

    assert response.status_code == 422, response.text
    assert detail in response.text
    assert "--" not in response.text  # no option of the CLI's in the API's words
    assert repo.get_maintenance_or_none() is None


@pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)
@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/job/pause"), ("POST", "/v1/job/resume")])
def test_the_pause_endpoints_need_the_token(api: ApiClient, method: str, path: str) -> None:
    response = api.without_token().request(method, path)

    assert response.status_code == 401


@pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)
def test_a_named_token_is_who_set_and_who_ended_the_pause(
    database_url: str, work_pool_name: str
) -> None:
    settings = Settings(
        api_token=TOKEN,
        api_tokens="ops:ops-s3cret,deploy-bot:bot-s3cret",
        database_url=database_url,
        work_pool=work_pool_name,
    )
    api = ApiClient(create_app(settings), secrets=(database_url, TOKEN, "ops-s3cret", "bot-s3cret"))
    try:
        started = api.post(
            "/v1/job/pause", json={"reason": "x"}, headers={"Authorization": "Bearer ops-s3cret"}
        )
        ended = api.post("/v1/job/resume", headers={"Authorization": "Bearer bot-s3cret"})
    finally:
        api.shutdown()

    assert started.status_code == 201 and started.json()["pause"]["setBy"] == "api:ops"
    assert ended.json()["pause"]["endedBy"] == "api:deploy-bot"
