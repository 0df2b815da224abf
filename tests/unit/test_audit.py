"""Named API tokens in the settings, and what an audit entry says changed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from jobctl.audit import AuditEntry
from jobctl.settings import Settings, parse_named_tokens
from tests.fixtures.cli import run_cli

SECRET = "very-secret-value"


def _entry(action: str, before: dict | None, after: dict | None) -> AuditEntry:
    return AuditEntry(
        id=1,
        at=datetime(2026, 12, 1, tzinfo=UTC),
        action=action,
        schedule_id="s1",
        before=before,
        after=after,
        actor="cli:alice",
        db_user=None,
        application=None,
    )


def test_named_tokens_are_read_with_spaces_a_trailing_comma_and_colons_in_secrets() -> None:
    assert parse_named_tokens(" deploy-bot : abc , ops:x:y,") == {"deploy-bot": "abc", "ops": "x:y"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{SECRET}", "entry 1 is not name:secret"),
        (f"ok:abc,{SECRET}", "entry 2 is not name:secret"),
        (f"bad name:{SECRET}", "entry 1 is not name:secret"),
        ("ops:", "entry 1 (ops) has an empty token"),
        (f"ops:{SECRET},ops:other", "the name 'ops' is given twice"),
        (f"ops:{SECRET},ci:{SECRET}", "entry 2 (ci) repeats the token of another name"),
    ],
)
def test_a_malformed_entry_is_named_without_its_secret(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_named_tokens(text)
    with pytest.raises(ValidationError) as raised:
        Settings(api_tokens=text)
    assert message in str(raised.value)
    assert SECRET not in str(raised.value)


def test_callers_of_the_single_token_and_the_named_ones() -> None:
    settings = Settings(api_token="single", api_tokens="ci:c1,ops:o1")

    assert settings.api_callers == {"single": "api", "c1": "ci", "o1": "ops"}
    assert Settings().api_callers == {}


@pytest.mark.parametrize(
    ("tokens", "message"),
    [("api:other", "the name 'api' is JOBCTL_API_TOKEN's"), ("ci:single", "repeats JOBCTL_API")],
)
def test_named_tokens_cannot_shadow_the_single_token(tokens: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(api_token="single", api_tokens=tokens)


def test_the_audit_retention_defaults_to_a_year_and_must_be_positive() -> None:
    assert Settings().audit_retention_days == 365
    with pytest.raises(ValidationError):
        Settings(audit_retention_days=0)


def test_an_update_shows_the_columns_that_changed_but_not_its_timestamp() -> None:
    before = {"id": "s1", "cron": "0 0 * * *", "param": [1], "updatedAt": "t1", "priority": None}
    after = {"id": "s1", "cron": "*/5 * * * *", "param": [1], "updatedAt": "t2", "priority": 3}

    assert _entry("update", before, after).changes() == {
        "cron": ("0 0 * * *", "*/5 * * * *"),
        "priority": (None, 3),
    }


def test_an_insert_shows_what_it_set_and_a_delete_what_the_row_had() -> None:
    row = {"id": "s1", "cron": "0 0 * * *", "description": None, "createdAt": "t0"}

    assert _entry("insert", None, row).changes() == {"cron": (None, "0 0 * * *")}
    assert _entry("delete", row, None).changes() == {"cron": ("0 0 * * *", None)}


def test_jobctl_api_listens_beyond_loopback_with_named_tokens_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served: list[str] = []
    monkeypatch.setattr("jobctl.cli.api.uvicorn.run", lambda _app, host, port: served.append(host))
    env = {"JOBCTL_DATABASE_URL": "sqlite://"}

    refused = run_cli("api", "--host", "0.0.0.0", env=env, expect_rc=1)
    run_cli("api", "--host", "0.0.0.0", env={**env, "JOBCTL_API_TOKENS": "ci:c1"})

    assert "set JOBCTL_API_TOKEN (or --token) or JOBCTL_API_TOKENS" in refused.stderr
    assert served == ["0.0.0.0"]
