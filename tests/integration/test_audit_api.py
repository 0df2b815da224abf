"""The audit trail through the HTTP API, in-process, on SQLite and PostgreSQL: each change
names the caller's token (``JOBCTL_API_TOKENS``), and the log endpoints read it back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text

from jobctl.api.app import create_app
from jobctl.settings import Settings
from tests.fixtures.api import TOKEN, ApiClient

BOT_TOKEN = "bot-s3cret-token"
OPS_TOKEN = "ops-s3cret-token"
NAMED_TOKENS = f"deploy-bot:{BOT_TOKEN},ops:{OPS_TOKEN}"
SCHEDULE_BODY: dict[str, Any] = {"cron": "0 0 * * *", "jobName": "processData"}
# Checks of the request alone: the database makes no difference.
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)


@pytest.fixture
def api(database_url: str, engine: Engine) -> Iterator[ApiClient]:
    """The app with the single token and two named ones; ``engine`` migrated the database."""
    settings = Settings(database_url=database_url, api_token=TOKEN, api_tokens=NAMED_TOKENS)
    client = ApiClient(create_app(settings), secrets=(TOKEN, BOT_TOKEN, OPS_TOKEN))
    yield client
    client.shutdown()


def test_each_change_names_the_token_that_made_it(api: ApiClient) -> None:
    added = api.post("/v1/job/schedules", json=SCHEDULE_BODY)
    assert added.status_code == 201, added.text
    schedule_id = added.json()["id"]

    bot = api.patch(
        f"/v1/job/schedules/{schedule_id}",
        json={"cron": "*/5 * * * *"},
        headers={"Authorization": f"Bearer {BOT_TOKEN}"},
    )
    ops = api.delete(
        f"/v1/job/schedules/{schedule_id}", headers={"Authorization": f"Bearer {OPS_TOKEN}"}
    )
    log = api.get(f"/v1/job/schedules/{schedule_id}/log")

    assert (bot.status_code, ops.status_code, log.status_code) == (200, 204, 200), log.text
    deleted, updated, inserted = log.json()
    assert [(e["action"], e["actor"]) for e in (inserted, updated, deleted)] == [
        ("insert", "api"),
        ("update", "api:deploy-bot"),
        ("delete", "api:ops"),
    ]
    assert updated["changed"] == ["cron"]
    assert (updated["before"]["cron"], updated["after"]["cron"]) == ("0 0 * * *", "*/5 * * * *")
    assert inserted["before"] is None and deleted["after"] is None
    assert deleted["before"]["cron"] == "*/5 * * * *"


def test_the_log_of_every_row_and_its_filters(api: ApiClient, engine: Engine) -> None:
    first = api.post("/v1/job/schedules", json=SCHEDULE_BODY).json()["id"]
    second = api.post("/v1/job/schedules", json=SCHEDULE_BODY).json()["id"]
    with engine.begin() as connection:
        connection.execute(
            text('UPDATE jobctl_schedule_audit SET at = :at WHERE "scheduleId" = :id'),
            {"at": datetime(2020, 1, 1, tzinfo=UTC), "id": first},
        )

    every = api.get("/v1/job/schedules/log")
    recent = api.get("/v1/job/schedules/log", params={"since": "2021-01-01T00:00:00"})
    newest = api.get("/v1/job/schedules/log", params={"limit": 1})

    assert [e["scheduleId"] for e in every.json()] == [second, first]
    assert [e["scheduleId"] for e in recent.json()] == [second]
    assert [e["scheduleId"] for e in newest.json()] == [second]


@ON_SQLITE
@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/job/schedules/00000000-0000-0000-0000-000000000000/log", 404),
        ("/v1/job/schedules/not-a-uuid/log", 404),
        ("/v1/job/schedules/log?limit=0", 422),
        ("/v1/job/schedules/log?since=yesterday", 422),
    ],
)
def test_a_bad_request_for_the_log_is_refused_clearly(
    api: ApiClient, path: str, status: int
) -> None:
    response = api.get(path)

    assert response.status_code == status, response.text
    assert "detail" in response.json()


@ON_SQLITE
@pytest.mark.parametrize("token", [None, "wrong", f"{BOT_TOKEN}x", "deploy-bot"])
def test_the_log_needs_a_known_token(api: ApiClient, token: str | None) -> None:
    client = api.without_token()
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}

    assert client.get("/v1/job/schedules/log", headers=headers).status_code == 401
    assert client.post("/v1/job/schedules", json=SCHEDULE_BODY, headers=headers).status_code == 401
