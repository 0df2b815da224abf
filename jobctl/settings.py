"""Configuration: one frozen object read from ``JOBCTL_*`` variables at start-up and passed down."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobctl.cron import is_time_zone

DEFAULT_STATE_DIR = Path(".jobctl")
SINGLE_TOKEN_NAME = "api"  # the caller's name when it presents JOBCTL_API_TOKEN
TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")


def parse_named_tokens(text: str) -> dict[str, str]:
    """``name:secret,name:secret`` as ``{name: secret}``; raises ValueError naming the
    entry (by position and name, never its secret) that is malformed or repeated."""
    tokens: dict[str, str] = {}
    entries = [entry.strip() for entry in text.split(",")]
    for position, entry in enumerate(entries, start=1):
        if not entry:
            continue  # a trailing comma
        name, colon, secret = entry.partition(":")
        name, secret = name.strip(), secret.strip()
        if not colon or not TOKEN_NAME.fullmatch(name):
            raise ValueError(
                f"entry {position} is not name:secret (a name of letters, digits, "
                "'_.@-', then ':' and the token)"
            )
        if not secret:
            raise ValueError(f"entry {position} ({name}) has an empty token")
        if name in tokens:
            raise ValueError(f"the name {name!r} is given twice")
        if secret in tokens.values():
            raise ValueError(f"entry {position} ({name}) repeats the token of another name")
        tokens[name] = secret
    return tokens


class Settings(BaseSettings):
    # Errors never quote a value: it may be a token or a database password.
    model_config = SettingsConfigDict(
        env_prefix="JOBCTL_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_STATE_DIR}/jobctl.db",
        description="SQLAlchemy URL of the JobSchedule/JobHistory tables "
        "(PostgreSQL: postgresql+psycopg://user@host/db).",
    )
    timezone: str = Field(
        default="UTC", description="IANA zone for crons of rows whose timezone is null."
    )
    history_retention_days: int = Field(
        default=30, ge=1, description="JobHistory rows older than this are purged."
    )
    retry_delay_ms: int = Field(
        default=10_000, ge=0, description="Retry delay of rows whose retryDelay is null."
    )
    misfire_grace_ms: int = Field(
        default=60_000,
        ge=0,
        description="A scheduled run starting later than this is skipped, except the most "
        "recent missed run of its schedule (rows override with misfireGrace).",
    )
    work_pool: str = Field(default="jobctl", description="Prefect work pool that runs every job.")
    worker_type: Literal["jobctl-warm", "process"] = Field(
        default="jobctl-warm",
        description="Type of the pool the sync creates and of the worker `jobctl up` starts: "
        "jobctl-warm forks each run from a preloaded template, process starts Prefect's "
        "two fresh interpreters per run.",
    )
    worker_reload: bool = Field(
        default=False,
        description="A jobctl-warm worker builds a new template when a file under jobs/ "
        "changes (`jobctl up` sets it; production restarts the worker on deploy).",
    )
    work_pool_concurrency: int | None = Field(
        default=None, ge=1, description="Runs executing at once in the pool (none = unlimited)."
    )
    watch_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="How often `jobctl sync --watch` checks the change marker "
        "(PostgreSQL also wakes on NOTIFY at once).",
    )
    full_resync_interval_s: float = Field(
        default=300.0,
        gt=0,
        description="How often the watcher re-reads all deployments to catch edits made in the UI.",
    )
    dead_run_grace_s: float = Field(
        default=60.0,
        ge=0,
        description="A run still Running this long past its timeout is marked crashed.",
    )
    pending_run_grace_s: float = Field(
        default=300.0,
        gt=0,
        description="A run Pending this long (its worker died before starting it) is marked "
        "crashed; keep it well above the workers' prefetch.",
    )
    history_backfill_window_s: float = Field(
        default=86_400.0,
        gt=0,
        description="How far back the history reconciler looks for runs without history.",
    )
    reconcile_interval_s: float = Field(
        default=60.0, gt=0, description="How often `jobctl sync --watch` reconciles history."
    )

    alert_to: str | None = Field(
        default=None,
        description="Prefect notification block (``custom-webhook/oncall``) that gets the alerts "
        "of rows whose alertTo is null (unset: no alerts for them).",
    )
    heartbeat_url: str | None = Field(
        default=None,
        description="Pinged every minute by the sync watcher while the database, Prefect and "
        "a worker are healthy (a dead man's switch: healthchecks.io, Cronitor, Uptime Kuma).",
    )

    api_host: str = Field(default="127.0.0.1", description="Address `jobctl api` binds.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port `jobctl api` binds.")
    api_token: str | None = Field(
        default=None,
        description="Bearer token every endpoint but /health requires "
        "(unset: `jobctl api` binds to loopback only).",
    )
    api_tokens: str | None = Field(
        default=None,
        description="Named bearer tokens, `name:secret,...`, accepted beside JOBCTL_API_TOKEN "
        "(whose caller is named api); the name is the caller in the schedules' audit trail.",
    )
    audit_retention_days: int = Field(
        default=365,
        ge=1,
        description="`jobctl history purge` deletes audit rows of schedule changes older "
        "than this.",
    )

    @field_validator("api_tokens")
    @classmethod
    def _well_formed_tokens(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        named = parse_named_tokens(value)
        single = info.data.get("api_token")
        if single is not None and SINGLE_TOKEN_NAME in named:
            raise ValueError(f"the name {SINGLE_TOKEN_NAME!r} is JOBCTL_API_TOKEN's")
        if single is not None and single in named.values():
            raise ValueError("an entry repeats JOBCTL_API_TOKEN under another name")
        return value

    @property
    def api_callers(self) -> dict[str, str]:
        """Each bearer token the API accepts, and the name of its caller."""
        callers = {
            secret: name for name, secret in parse_named_tokens(self.api_tokens or "").items()
        }
        if self.api_token is not None:
            callers[self.api_token] = SINGLE_TOKEN_NAME
        return callers

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if not is_time_zone(value):
            raise ValueError(f"{value!r} is not an IANA time zone")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
