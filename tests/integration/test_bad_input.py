"""Bad input everywhere: rows written by plain SQL, the command line and the HTTP API.

Every class of wrong value (bad cron, unknown job, a param that does not fit its job,
negative and huge numbers, empty and enormous text, unicode, NUL, SQL-looking text, odd
ids) is reported with its field and never stops anything else: the sync rejects the bad
rows by id and syncs the good ones; the CLI and the API refuse with a clear error and
write nothing. test_sync.py, test_cli.py and test_api.py cover the first member of some
classes (``61 * * * *``, ``__init__``, a negative timeout); these extend them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, inspect, text

from deployments.plan import Action
from jobctl.api.app import create_app
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.conftest import POSTGRESQL, SQLITE, ScheduleFactory
from tests.fixtures.api import TOKEN, ApiClient
from tests.fixtures.cli import Call, cli_env, run_cli, run_concurrently
from tests.fixtures.sync import RequestLog, SyncTarget

pytestmark = pytest.mark.reliability

ON_SQLITE = pytest.mark.parametrize("database_url", [SQLITE], ids=["sqlite"], indirect=True)
MB = 1024 * 1024
SQL = '\'; DROP TABLE "JobSchedule"; --'
RTL = "\u202eevil\u202c عربى"  # a right-to-left override and Arabic
EMOJI = "🙂🚀"
# Any reason or error line, whatever the size of the value it quotes.
MAX_REASON_CHARS = 1_000
BOTH = frozenset({SQLITE, POSTGRESQL})
# PostgreSQL refuses these at INSERT (NUL in text, \u0000 in jsonb, malformed JSON, an
# integer beyond int32, text in an integer or boolean column): only SQLite can hold them.
SQLITE_ONLY = frozenset({SQLITE})


@dataclass(frozen=True)
class BadRow:
    schedule_id: str
    columns: dict[str, Any]
    field: str  # the field its reason names
    backends: frozenset[str] = BOTH


BAD_ROWS = [
    # cron
    BadRow("cron-empty", {"cron": ""}, "cron"),
    BadRow("cron-1MB", {"cron": "1" * MB}, "cron"),
    BadRow("cron-emoji", {"cron": f"{EMOJI} * * * *"}, "cron"),
    BadRow("cron-rtl", {"cron": f"{RTL} * * * *"}, "cron"),
    BadRow("cron-sql", {"cron": SQL}, "cron"),
    BadRow("cron-never-fires", {"cron": "0 0 30 2 *"}, "cron"),
    BadRow("cron-prefect-refuses", {"cron": "R * * * *"}, "cron"),
    BadRow("cron-nul", {"cron": "0 0 * * *\x00"}, "cron", SQLITE_ONLY),
    # jobName
    BadRow("job-empty", {"jobName": ""}, "jobName"),
    BadRow("job-1MB", {"jobName": "j" * MB}, "jobName"),
    BadRow("job-rtl", {"jobName": RTL}, "jobName"),
    BadRow("job-sql", {"jobName": SQL}, "jobName"),
    BadRow("job-nul", {"jobName": "processData\x00"}, "jobName", SQLITE_ONLY),
    # param: processData takes a list of text or null
    BadRow("param-object", {"param": json.dumps({"a": 1})}, "param"),
    BadRow("param-number", {"param": "42"}, "param"),
    BadRow("param-text", {"param": json.dumps("text")}, "param"),
    BadRow("param-numbers", {"param": json.dumps([1, 2])}, "param"),
    BadRow("param-1MB", {"param": json.dumps(["x" * MB])}, "param"),
    BadRow("param-deep", {"param": "[" * 3_000 + "]" * 3_000}, "param"),
    BadRow("param-nul", {"param": json.dumps(["a\x00b"])}, "param", SQLITE_ONLY),
    BadRow("param-empty-text", {"param": ""}, "param", SQLITE_ONLY),
    # numbers
    BadRow("timeout-int32-min", {"timeout": -(2**31)}, "timeout"),
    BadRow("priority-negative", {"priority": -1}, "priority"),
    BadRow("retries-int32-max", {"maxRetries": 2**31 - 1}, "maxRetries"),
    BadRow("retry-delay-negative", {"retryDelay": -1}, "retryDelay"),
    BadRow("misfire-grace-negative", {"misfireGrace": -5}, "misfireGrace"),
    BadRow("priority-beyond-int32", {"priority": 2**31}, "priority", SQLITE_ONLY),
    BadRow("timeout-int64-max", {"timeout": 2**63 - 1}, "timeout", SQLITE_ONLY),
    BadRow("priority-text", {"priority": "high"}, "priority", SQLITE_ONLY),
    BadRow("timeout-fraction", {"timeout": 1.5}, "timeout", SQLITE_ONLY),
    # other text columns
    BadRow("timezone-empty", {"timezone": ""}, "timezone"),
    BadRow("timezone-emoji", {"timezone": EMOJI}, "timezone"),
    BadRow("timezone-1MB", {"timezone": "Z" * MB}, "timezone"),
    BadRow("backoff-1MB", {"retryBackoff": "b" * MB}, "retryBackoff"),
    BadRow("overlap-sql", {"overlap": SQL}, "overlap"),
    BadRow("description-nul", {"description": "a\x00b"}, "description", SQLITE_ONLY),
    # isActive: SQLite's boolean column is an integer and takes any value
    BadRow("active-maybe", {"isActive": "maybe"}, "isActive", SQLITE_ONLY),
    BadRow("active-false-text", {"isActive": "false"}, "isActive", SQLITE_ONLY),
    BadRow("active-two", {"isActive": 2}, "isActive", SQLITE_ONLY),
    # ids: the id names the deployment, and Prefect refuses some names
    BadRow("", {}, "id"),
    BadRow("a/b", {}, "id"),
    BadRow("100%", {}, "id"),
    BadRow("i" * 300, {}, "id"),
    BadRow("id\x00nul", {}, "id", SQLITE_ONLY),
]
# Beyond int64: only a SQL literal can say it; SQLite stores it as a REAL.
BEYOND_INT64 = ("retries-beyond-int64", '"maxRetries"', "99999999999999999999", "maxRetries")

# Odd but valid: each syncs, its text reaching Prefect unchanged.
GOOD_ROWS: dict[str, dict[str, Any]] = {
    "good-plain": {},
    "good-unicode": {"description": f"{RTL} {EMOJI} 每日資料清理任務", "param": ["שלום", EMOJI]},
    "good-sql-text": {"description": SQL, "param": json.dumps([SQL])},
    "good-markup": {"description": "[/]"},  # rich markup that closes nothing
    "good-empty-description": {"description": ""},
    "good-int32-max": {"timeout": 2**31 - 1, "priority": 2**31 - 1, "maxRetries": 100},
    SQL: {},  # a SQL-looking id is a valid deployment name
    f"row-{EMOJI}-{RTL}": {},
}


def _insert(engine: Engine, schedule_id: str, **columns: Any) -> None:
    """One row by plain SQL, bound parameters only: what an operator's script can do."""
    values: dict[str, Any] = {
        "id": schedule_id,
        "cron": "0 0 1 1 *",
        "jobName": "processData",
        "param": json.dumps(["alpha"]),
        **columns,
    }
    if isinstance(values["param"], list):
        values["param"] = json.dumps(values["param"])
    names = ", ".join(f'"{name}"' for name in values)
    binds = ", ".join(f":{name}" for name in values)
    with engine.begin() as connection:
        connection.execute(text(f'INSERT INTO "JobSchedule" ({names}) VALUES ({binds})'), values)


def _backend(engine: Engine) -> str:
    return SQLITE if engine.dialect.name == "sqlite" else POSTGRESQL


def _row_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text('SELECT count(*) FROM "JobSchedule"')).scalar_one())


def _seed_bad_and_good_rows(engine: Engine) -> tuple[dict[str, str], set[str]]:
    """The bad rows this backend can hold (id -> field) and the good ones."""
    bad = {row.schedule_id: row.field for row in BAD_ROWS if _backend(engine) in row.backends}
    for row in BAD_ROWS:
        if row.schedule_id in bad:
            _insert(engine, row.schedule_id, **row.columns)
    if _backend(engine) == SQLITE:
        schedule_id, column, literal, field_name = BEYOND_INT64
        with engine.begin() as connection:
            connection.execute(
                text(
                    f'INSERT INTO "JobSchedule" (id, cron, "jobName", {column}) '
                    f"VALUES (:id, '0 0 1 1 *', 'processData', {literal})"
                ),
                {"id": schedule_id},
            )
        bad[schedule_id] = field_name
    for schedule_id, columns in GOOD_ROWS.items():
        _insert(engine, schedule_id, **columns)
    return bad, set(GOOD_ROWS)


@pytest.fixture
def seeded(engine: Engine) -> tuple[dict[str, str], set[str]]:
    return _seed_bad_and_good_rows(engine)


# -- the sync ----------------------------------------------------------------------------


def test_one_sync_reports_every_bad_row_by_id_and_syncs_every_good_one(
    sync_target: SyncTarget, seeded: tuple[dict[str, str], set[str]]
) -> None:
    bad, good = seeded
    engine = sync_target.repository.engine
    rows_before = _row_count(engine)

    report = sync_target.sync()

    assert report.ok, report.failures
    reasons = {step.schedule_id: step.reason or "" for step in report.plan.rejected}
    assert set(reasons) == set(bad)
    wrong = {
        schedule_id[:40]: reason[:200]
        for schedule_id, reason in reasons.items()
        if f"{bad[schedule_id]}: " not in reason or len(reason) > MAX_REASON_CHARS
    }
    assert wrong == {}, "a reason that does not name its field, or is too long"
    deployments = sync_target.deployments()
    assert set(deployments) == good
    for schedule_id in good:
        row = sync_target.repository.get_schedule(schedule_id)
        deployment = deployments[schedule_id]
        assert deployment.description == (row.description or "")
        assert deployment.parameters == {"param": row.param}
        assert deployment.paused is False
    # Nothing was executed from the text: every table and row is still there.
    assert _row_count(engine) == rows_before
    assert {"JobSchedule", "JobHistory", "jobctl_state"} <= set(inspect(engine).get_table_names())
    # And the bad rows cost nothing on the next sync.
    log = RequestLog()
    again = sync_target.sync(log=log)
    assert again.plan.counts()[Action.UNCHANGED] == len(good)
    assert log.writes == []


@ON_SQLITE  # PostgreSQL's boolean column holds booleans only
def test_a_bad_row_whose_value_the_boolean_type_would_misread_is_rejected_not_activated(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    """A row disabled by plain SQL as ``'false'`` on SQLite must not run: SQLAlchemy's
    Boolean type reads any text as true, and the sync resumed its deployment."""
    row = sync_target.repository.add_schedule(schedule_factory(is_active=False))
    sync_target.sync()
    assert sync_target.deployments()[row.id].paused is True
    with sync_target.repository.engine.begin() as connection:
        connection.execute(
            text('UPDATE "JobSchedule" SET "isActive" = \'false\' WHERE id = :id'), {"id": row.id}
        )

    report = sync_target.sync()

    assert [s.schedule_id for s in report.plan.rejected] == [row.id]
    assert sync_target.deployments()[row.id].paused is True


# -- the command line --------------------------------------------------------------------


def _cli_env(database_url: str, home: Path) -> dict[str, str]:
    """``cli_env`` reading the virtualenv's own bytecode (``uv sync --compile-bytecode``)
    and writing none: a fresh bytecode folder would compile Prefect again for a few calls."""
    env = cli_env(database_url=database_url, home=home, pycache=home)
    del env["PYTHONPYCACHEPREFIX"]
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr[:3000]
    assert lines[0].startswith("error: "), lines[0][:300]
    assert len(lines[0]) <= MAX_REASON_CHARS * 3, lines[0][:300]
    return lines[0]


# (options of `schedule add` beyond a good daily processData row, the fields its error
# names): one call reports every problem of its row, so each call covers many classes.
CLI_BAD_ADDS = {
    "text-and-numbers": (
        [
            *("--cron", f"{EMOJI} * * * *", "--job", SQL, "--timezone", RTL),
            *("--priority", "-1", "--timeout", str(2**31), "--max-retries", str(2**64)),
            *("--retry-delay", "-1", "--misfire-grace", "-1"),
        ],
        [
            *("cron", "jobName", "timezone", "priority", "timeout", "maxRetries"),
            *("retryDelay", "misfireGrace"),
        ],
    ),
    "enormous-and-nan": (
        ["--cron", "1" * 100_000, "--job", "j" * 20_000, "--param", "NaN"],
        ["cron", "jobName", "param"],
    ),
    "param-of-the-wrong-type-cron-never-fires": (
        ["--param", '{"a": 1}', "--cron", "0 0 30 2 *"],
        ["cron", "param"],
    ),
}


# Validation does not depend on the database, and each call costs an import of Prefect.
@ON_SQLITE
def test_the_cli_refuses_each_class_with_one_line_naming_the_fields_and_writes_nothing(
    database_url: str,
    repo: Repository,
    schedule_factory: ScheduleFactory,
    tmp_path: Path,
) -> None:
    env = _cli_env(database_url, tmp_path)
    existing = repo.add_schedule(schedule_factory(cron="0 0 1 1 *"))
    add = ["schedule", "add", "--cron", "0 0 * * *", "--job", "processData"]
    calls = [Call([*add, *options], env, expect_rc=1) for options, _ in CLI_BAD_ADDS.values()]
    update = Call(["schedule", "update", existing.id, "--cron", "R * * * *"], env, expect_rc=1)

    *added, updated = run_concurrently(*calls, update)

    for (name, (_, fields)), result in zip(CLI_BAD_ADDS.items(), added, strict=True):
        line = _error_line(result.stderr)
        for field_name in fields:
            assert f" {field_name}: " in line or f"; {field_name}: " in line, (name, line[:500])
        assert result.stdout == "", name
    assert " cron: " in _error_line(updated.stderr)
    assert existing.id in updated.stderr
    assert repo.list_schedules() == [existing]


@ON_SQLITE  # SQLite holds every bad row PostgreSQL can, and more
def test_schedule_list_survives_every_bad_row(
    seeded: tuple[dict[str, str], set[str]],
    database_url: str,
    tmp_path: Path,
) -> None:
    bad, good = seeded
    env = _cli_env(database_url, tmp_path)

    listed = run_cli("schedule", "list", env=env)

    assert f"{len(bad) + len(good)} schedule(s)" in listed.stdout
    assert listed.stdout.count("invalid: ") == len(bad)
    assert "│ [/]" in listed.stdout  # a description shown as text, not read as markup


# -- the HTTP API ------------------------------------------------------------------------

# (a body change, the field its 422 names): added (with the rest of a good body) and patched.
API_BAD_CHANGES: dict[str, tuple[dict[str, Any], str]] = {
    "cron-empty": ({"cron": ""}, "cron"),
    "cron-never-fires": ({"cron": "0 0 30 2 *"}, "cron"),
    "cron-prefect-refuses": ({"cron": "R * * * *"}, "cron"),
    "cron-emoji": ({"cron": f"{EMOJI} * * * *"}, "cron"),
    "cron-nul": ({"cron": "0 0 * * *\x00"}, "cron"),
    "cron-over-200": ({"cron": "1" * 201}, "cron"),
    "job-empty": ({"jobName": ""}, "jobName"),
    "job-sql": ({"jobName": SQL}, "jobName"),
    "job-rtl": ({"jobName": RTL}, "jobName"),
    "job-number": ({"jobName": 5}, "jobName"),
    "param-object": ({"param": {"a": 1}}, "param"),
    "param-numbers": ({"param": [1, 2]}, "param"),
    "param-nul": ({"param": ["a\x00b"]}, "param"),
    "priority-negative": ({"priority": -1}, "priority"),
    "priority-beyond-int32": ({"priority": 2**31}, "priority"),
    "priority-beyond-int64": ({"priority": 2**64}, "priority"),
    "priority-text": ({"priority": "high"}, "priority"),
    "priority-fraction": ({"priority": 1.5}, "priority"),
    "timeout-beyond-int64": ({"timeout": 2**63}, "timeout"),
    "retries-negative": ({"maxRetries": -1}, "maxRetries"),
    "retry-delay-negative": ({"retryDelay": -1}, "retryDelay"),
    "misfire-grace-huge": ({"misfireGrace": 2**70}, "misfireGrace"),
    "timezone-empty": ({"timezone": ""}, "timezone"),
    "timezone-emoji": ({"timezone": EMOJI}, "timezone"),
    "active-maybe": ({"isActive": "maybe"}, "isActive"),
    "active-two": ({"isActive": 2}, "isActive"),
    "description-over-10000": ({"description": "d" * 10_001}, "description"),
    "description-nul": ({"description": "a\x00b"}, "description"),
    "backoff-empty": ({"retryBackoff": ""}, "retryBackoff"),
    "overlap-sql": ({"overlap": SQL}, "overlap"),
}
GOOD_BODY: dict[str, Any] = {"cron": "0 0 1 1 *", "jobName": "processData", "param": ["a"]}


@pytest.fixture
def api(database_url: str, work_pool_name: str) -> Iterator[ApiClient]:
    settings = Settings(api_token=TOKEN, database_url=database_url, work_pool=work_pool_name)
    client = ApiClient(create_app(settings), secrets=(database_url, TOKEN))
    yield client
    client.shutdown()


def test_the_api_answers_422_naming_the_field_for_each_class_and_writes_nothing(
    api: ApiClient, repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    existing = repo.add_schedule(schedule_factory(cron="0 0 1 1 *"))
    before = repo.list_schedules()

    wrong: dict[str, Any] = {}
    for name, (change, field_name) in API_BAD_CHANGES.items():
        for verb, response in (
            ("add", api.post("/v1/job/schedules", json={**GOOD_BODY, **change})),
            ("patch", api.patch(f"/v1/job/schedules/{existing.id}", json=change)),
        ):
            named = (
                [error["loc"][-1] for error in response.json()["detail"]]
                if response.status_code == 422
                else []
            )
            if response.status_code != 422 or field_name not in named:
                wrong[f"{verb} {name}"] = (response.status_code, response.text[:300])

    assert wrong == {}
    assert repo.list_schedules() == before


def test_the_api_lists_every_row_plain_sql_wrote_each_bad_one_with_its_problem(
    api: ApiClient, seeded: tuple[dict[str, str], set[str]]
) -> None:
    bad, good = seeded

    listed = api.get("/v1/job/schedules")

    assert listed.status_code == 200, listed.text[:500]
    problems = {row["id"]: row["problems"] for row in listed.json()}
    assert set(problems) == set(bad) | good
    unnamed = {
        schedule_id[:40]: found[:3]
        for schedule_id, found in problems.items()
        if schedule_id in bad and not any(p.startswith(f"{bad[schedule_id]}: ") for p in found)
    }
    assert unnamed == {}, "a bad row listed without a problem naming its field"
    assert {schedule_id for schedule_id in good if problems[schedule_id]} == set()
    # One by one as well (the ids a path can name).
    for schedule_id in bad:
        if bad[schedule_id] != "id":
            one = api.get(f"/v1/job/schedules/{quote(schedule_id, safe='')}")
            assert one.status_code == 200, (schedule_id, one.text[:300])
            assert one.json()["problems"] == problems[schedule_id]


@ON_SQLITE
def test_a_row_whose_timestamps_plain_sql_garbled_still_syncs_and_reads(
    sync_target: SyncTarget, api: ApiClient
) -> None:
    """createdAt and updatedAt say when a row was written, not when it runs: text that is
    no timestamp there reads as unknown, and stops neither that row nor the others."""
    engine = sync_target.repository.engine
    _insert(engine, "garbled", createdAt="garbage", updatedAt="2026-13-45")
    _insert(engine, "beside-it")

    report = sync_target.sync()

    assert report.ok and report.plan.rejected == [], report.summary()
    assert set(sync_target.deployments()) == {"garbled", "beside-it"}
    row = sync_target.repository.get_schedule("garbled")
    assert (row.created_at, row.updated_at) == (None, None)
    assert sync_target.repository.get_schedule("beside-it").created_at is not None
    listed = {row["id"]: row for row in api.get("/v1/job/schedules").json()}
    assert listed["garbled"]["createdAt"] is None and listed["garbled"]["problems"] == []


CALL_JOB_NAMES = {"sql": SQL, "rtl": RTL, "emoji": EMOJI, "nul-only": "\x00"}
RUN_PATHS = {
    "call-job": ("/v1/job/call-job", {}),
    "call-job-no-wait": ("/v1/job/call-job", {"wait": False}),
    "runs": ("/v1/job/runs", {}),
}


@ON_SQLITE
def test_call_job_answers_404_for_names_of_each_class_and_runs_nothing(
    api: ApiClient, repo: Repository
) -> None:
    statuses = {
        name: api.post("/v1/job/call-job", json={"methodName": method, "param": None}).status_code
        for name, method in CALL_JOB_NAMES.items()
    }

    assert statuses == dict.fromkeys(CALL_JOB_NAMES, 404)
    assert repo.count_history() == 0


@ON_SQLITE
@pytest.mark.usefixtures("prefect_server")  # submitting connects to Prefect first
@pytest.mark.parametrize(
    ("method", "param"),
    [("processData", ["a\x00b"]), ("fail", "\x00"), ("httpCall", {"url\x00": "x"})],
    ids=["in-a-list", "text", "in-a-key"],
)
def test_a_param_with_a_nul_character_answers_422_and_runs_nothing(
    api: ApiClient, repo: Repository, method: str, param: Any
) -> None:
    """A Prefect server on PostgreSQL cannot store such a param: creating the run failed
    after retries, and the API answered 500."""
    responses = {
        name: api.post(path, json={"methodName": method, "param": param, **extra})
        for name, (path, extra) in RUN_PATHS.items()
    }

    assert {name: r.status_code for name, r in responses.items()} == dict.fromkeys(RUN_PATHS, 422)
    assert all("param" in r.text for r in responses.values())
    assert repo.count_history() == 0
