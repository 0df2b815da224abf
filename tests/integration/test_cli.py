"""The ``jobctl`` command line on SQLite and PostgreSQL: in this process through click's
runner, and as the real console script where the process is what is checked (exit code
and traceback of ``-v``, what a command imports).
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import click
import pytest
from sqlalchemy import Engine, text

from deployments.plan import Action
from jobctl import cli as jobctl_cli
from jobctl import registry
from jobctl.cron import next_fire_times
from jobctl.models import JobStatus
from jobctl.records import SPEC_FIELDS, HistoryFilter
from jobctl.repository import Repository
from tests.conftest import ScheduleFactory
from tests.fixtures.cli import Call, cli_env, run_cli, run_concurrently
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.sync import SyncTarget

DAILY = "0 0 * * *"
FIRE_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")
FIRE_TIME_FORMAT = "%Y-%m-%d %H:%M %Z"
UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"
UNREACHABLE_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:1/x"
# Never due during a test.
NEVER_DUE = "0 0 1 1 *"


class EnvFactory(Protocol):
    def __call__(self, database_url: str, **extra: Any) -> dict[str, str]: ...


@pytest.fixture(scope="session")
def pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bytecode shared by every CLI call of the session (see ``cli_env``)."""
    return tmp_path_factory.mktemp("pycache")


@pytest.fixture
def make_env(tmp_path: Path, pycache: Path) -> EnvFactory:
    """Build the CLI's environment for a database URL, plus extra variables."""

    def make(database_url: str, **extra: Any) -> dict[str, str]:
        return cli_env(database_url=database_url, home=tmp_path, pycache=pycache, **extra)

    return make


@pytest.fixture
def env(database_url: str, make_env: EnvFactory) -> dict[str, str]:
    """The CLI's environment on the migrated database of this test."""
    return make_env(database_url)


# -- output parsing ----------------------------------------------------------------------


def _fire_times(output: str) -> list[str]:
    return FIRE_TIME.findall(output)


def _expected_fire_times(at: datetime) -> list[str]:
    return [t.strftime(FIRE_TIME_FORMAT) for t in next_fire_times(DAILY, "UTC", at=at)]


def _detail_fields(output: str) -> dict[str, str]:
    """The ``name │ value`` rows of a rich detail table; continuation lines are appended."""
    fields: dict[str, str] = {}
    last = ""
    for match in re.finditer(r"^│ ([^│]*?)\s*│ (.*?)\s*│$", output, re.MULTILINE):
        name, value = match.groups()
        if name:
            fields[name] = value
            last = name
        elif last:
            fields[last] += "\n" + value
    return fields


def _history_ids(output: str) -> list[int]:
    """The ids in the first column of ``jobctl history``, top to bottom."""
    return [int(found) for found in re.findall(r"^│\s*(\d+)\s*│", output, re.MULTILINE)]


def _checks(output: str) -> dict[str, str]:
    """``jobctl healthcheck`` rows: check name -> ok/FAIL."""
    rows = re.findall(r"^│ (database|migrations|prefect api)\s*│ (ok|FAIL)\s*│", output, re.M)
    return dict(rows)


def _sync_counts(output: str) -> dict[str, int]:
    actions = "|".join(action.value for action in Action)
    rows = re.findall(rf"^│ ({actions})\s*│\s*(\d+) │$", output, re.MULTILINE)
    return {action: int(count) for action, count in rows}


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


# -- 1. the acceptance path ------------------------------------------------------------


def test_db_upgrade_then_add_list_and_show_a_daily_schedule(
    unmigrated_database_url: str, unmigrated_engine: Engine, make_env: EnvFactory
) -> None:
    env = make_env(unmigrated_database_url)

    first = run_cli("db", "upgrade", env=env)
    assert re.fullmatch(r"database upgraded from nothing to \w+\n", first.stdout), first.stdout
    head = first.stdout.split()[-1]
    second = run_cli("db", "upgrade", env=env)
    assert second.stdout == f"database already at revision {head}\n"

    added = run_cli(
        "schedule", "add", "--cron", DAILY, "--job", "processData",
        "--param", '["param1","param2"]', "--priority", "10", "--timeout", "600000",
        "--max-retries", "3", "--description", "每日資料清理任務",
        env=env,
    )  # fmt: skip
    schedule_id = added.stdout.strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", schedule_id), added.stdout

    before = datetime.now(UTC)
    listed, shown = run_concurrently(
        Call(["schedule", "list"], env), Call(["schedule", "show", schedule_id], env)
    )
    after = datetime.now(UTC)
    # A call that straddles midnight sees the triplet of either day.
    expected = [_expected_fire_times(before), _expected_fire_times(after)]

    assert "1 schedule(s)" in listed.stdout
    wanted = (schedule_id, "processData", DAILY, "每日資料清理任務", '["param1", "param2"]')
    for shown_text in wanted:
        assert shown_text in listed.stdout, f"{shown_text!r} missing from:\n{listed.stdout}"
    assert _fire_times(listed.stdout) in expected, listed.stdout

    fields = _detail_fields(shown.stdout)
    assert set(fields) == {*SPEC_FIELDS, "created_at", "updated_at", "next runs"}, shown.stdout
    assert f"schedule {schedule_id}" in shown.stdout
    assert fields["job_name"] == "processData"
    assert fields["cron"] == DAILY
    assert fields["timezone"] == ""
    assert fields["is_active"] == "True"
    assert fields["priority"] == "10"
    assert fields["timeout_ms"] == "600000"
    assert fields["max_retries"] == "3"
    assert fields["retry_backoff"] == "fixed"
    assert fields["overlap"] == "allow"
    assert fields["description"] == "每日資料清理任務"
    assert fields["param"] == '["param1", "param2"]'
    assert fields["created_at"] and fields["updated_at"]
    assert fields["next runs"].split("\n") in expected, shown.stdout

    repo = Repository(unmigrated_engine)
    [row] = repo.list_schedules()
    assert (row.id, row.param, row.description, row.timezone) == (
        schedule_id,
        ["param1", "param2"],
        "每日資料清理任務",
        None,
    )


# -- 2. bad input ----------------------------------------------------------------------

BAD_ADDS = [
    # (extra options, the field the error names, a further text it must contain)
    (["--cron", "61 * * * *"], "cron", "61 * * * *"),
    (["--cron", "*/10 * * * * *"], "cron", "sub-minute"),
    (["--job", "nope"], "jobName", "nope"),
    (["--timezone", "Mars/Base"], "timezone", "Mars/Base"),
    (["--timeout", "-1"], "timeout", "-1"),
    (["--max-retries", "101"], "maxRetries", "101"),
]


def _add_args(*extra: str) -> list[str]:
    """``schedule add`` of a good daily row; later options in ``extra`` win."""
    return ["schedule", "add", "--cron", DAILY, "--job", "processData", *extra]


def test_bad_input_is_one_error_line_naming_the_field_and_writes_nothing(
    env: dict[str, str], repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    existing = repo.add_schedule(schedule_factory())
    calls = [Call(_add_args(*extra), env, expect_rc=1) for extra, _, _ in BAD_ADDS]
    bad_json = Call(_add_args("--param", "{bad json"), env, expect_rc=2)
    no_change = Call(["schedule", "update", existing.id], env, expect_rc=2)
    six_fields = Call(_add_args("--cron", "0 0 0 * * *"), env)

    *bad, json_result, no_change_result, six_result = run_concurrently(
        *calls, bad_json, no_change, six_fields
    )

    for (extra, field, detail), result in zip(BAD_ADDS, bad, strict=True):
        line = _one_error_line(result)
        assert f" {field}: " in line, (extra, line)
        assert detail in line, (extra, line)
        assert result.stdout == "", (extra, result.stdout)
    # A malformed --param is a click usage error: exit 2 and click's usage text.
    assert "Invalid value for '--param'" in json_result.stderr
    assert "not valid JSON" in json_result.stderr
    assert json_result.stdout == ""
    # So is an update without any option.
    assert "nothing to change" in no_change_result.stderr

    six_id = six_result.stdout.strip()
    rows = {row.id: row for row in repo.list_schedules()}
    assert set(rows) == {existing.id, six_id}  # only the six-field row was added
    assert rows[six_id].cron == DAILY
    assert rows[existing.id] == existing


# -- 3. update / enable / disable / remove ---------------------------------------------


def test_update_enable_disable_and_remove_change_only_what_they_name(
    env: dict[str, str], repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    original = repo.add_schedule(schedule_factory())
    sid = original.id

    updated = run_cli(
        "schedule", "update", sid, "--priority", "7", "--cron", "0 0 0 * * *",
        "--description", "neu beschrieben", env=env,
    )  # fmt: skip
    assert updated.stdout == f"updated {sid}\n"
    after_update = repo.get_schedule(sid)
    assert after_update.spec() == original.spec().replace(
        priority=7, cron=DAILY, description="neu beschrieben"
    )
    assert after_update.updated_at is not None and original.updated_at is not None
    assert after_update.updated_at > original.updated_at

    # Unknown ids through each repository path: get (update), UPDATE (disable), DELETE.
    invalid, *unknown = run_concurrently(
        Call(["schedule", "update", sid, "--max-retries", "101"], env, expect_rc=1),
        Call(["schedule", "update", UNKNOWN_ID, "--priority", "1"], env, expect_rc=1),
        Call(["schedule", "disable", UNKNOWN_ID], env, expect_rc=1),
        Call(["schedule", "remove", UNKNOWN_ID], env, expect_rc=1),
    )
    assert "maxRetries" in _one_error_line(invalid)
    assert sid in _one_error_line(invalid)
    for result in unknown:
        assert _one_error_line(result) == f"error: no schedule has the id '{UNKNOWN_ID}'"
    assert repo.get_schedule(sid) == after_update

    assert run_cli("schedule", "disable", sid, env=env).stdout == f"disabled {sid}\n"
    assert repo.get_schedule(sid).is_active is False
    assert run_cli("schedule", "enable", sid, env=env).stdout == f"enabled {sid}\n"
    enabled = repo.get_schedule(sid)
    assert enabled.is_active is True
    assert enabled.spec() == after_update.spec()

    assert run_cli("schedule", "remove", sid, env=env).stdout == f"removed {sid}\n"
    assert repo.get_schedule_or_none(sid) is None


def test_update_unset_clears_a_field_to_its_default_and_keeps_the_others(
    env: dict[str, str], repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    row = repo.add_schedule(
        schedule_factory(timezone="Europe/Berlin", alert_to="slack-webhook/ops", priority=3)
    )

    cleared = run_cli(
        "schedule", "update", row.id, "--unset", "timezone", "--unset", "alert-to", env=env
    )
    both = run_cli(
        "schedule", "update", row.id, "--priority", "1", "--unset", "priority", env=env,
        expect_rc=2,
    )  # fmt: skip

    assert cleared.stdout == f"updated {row.id}\n"
    after = repo.get_schedule(row.id)
    assert (after.timezone, after.alert_to) == (None, None)
    assert after.spec() == row.spec().replace(timezone=None, alert_to=None)
    assert "--unset priority: given a value too" in both.stderr
    assert repo.get_schedule(row.id).priority == 3


def test_commands_take_the_start_of_an_id_as_status_and_history_print_it(
    env: dict[str, str], repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    row = repo.add_schedule(schedule_factory(), schedule_id="5f1c0a9e-1111-4b1e-9d2c-000000000001")
    twin = repo.add_schedule(schedule_factory(), schedule_id="5f1c0a9e-2222-4b1e-9d2c-000000000002")
    short = row.id[:13]  # "5f1c0a9e-1111"; its first 8 characters start both ids
    repo.start_attempt(
        flow_run_id="run-1", attempt=1, job_name=row.job_name, param=None,
        schedule_id=row.id, start_at=datetime.now(UTC),
    )  # fmt: skip

    shown, disabled, history, audit_log, ambiguous, unknown = run_concurrently(
        Call(["schedule", "show", short], env),
        Call(["schedule", "disable", short], env),
        Call(["history", "--schedule", short], env),
        Call(["schedule", "log", short], env),
        Call(["schedule", "show", row.id[:8]], env, expect_rc=1),
        Call(["history", "--schedule", "nope-no-such-id"], env, expect_rc=1),
    )

    assert row.id in shown.stdout and twin.id not in shown.stdout
    assert disabled.stdout == f"disabled {row.id}\n"
    assert [r.id for r in repo.list_schedules() if r.is_active is False] == [row.id]
    assert "1 attempt(s)" in history.stdout, history.stdout
    assert "disabled" in audit_log.stdout or "isActive" in audit_log.stdout, audit_log.stdout
    assert row.id in _one_error_line(ambiguous) and twin.id in _one_error_line(ambiguous)
    assert _one_error_line(unknown) == (
        "error: no schedule has the id 'nope-no-such-id', and no attempt names it"
    )
    # A deleted row's attempts stay readable by its whole id.
    run_cli("schedule", "remove", short, env=env)
    assert "1 attempt(s)" in run_cli("history", "--schedule", row.id, env=env).stdout


# -- 4. jobs ---------------------------------------------------------------------------


def test_jobs_lists_every_registered_job(make_env: EnvFactory) -> None:
    env = make_env(UNREACHABLE_DATABASE_URL)  # needs no database

    result = run_cli("jobs", env=env)

    listed = re.findall(r"^│ (\w+)\s*│", result.stdout, re.MULTILINE)
    assert {"processData", "httpCall", "sleep", "fail"} <= set(listed)
    assert set(listed) == set(registry.job_names())


# -- 5. history ------------------------------------------------------------------------

MULTI_LINE_ERROR = (
    "Traceback (most recent call last):\n"
    '  File "jobs/examples.py", line 42, in fail\n'
    "    raise RuntimeError(param)\n"
    "RuntimeError: disk full\n"
    "while writing /var/data/out.csv"
)


def test_history_filters_shows_one_attempt_and_purges_old_ones(
    env: dict[str, str], repo: Repository
) -> None:
    now = datetime.now(UTC)

    def attempt(job: str, status: JobStatus, started_ago: timedelta, error: str | None) -> int:
        run = f"run-{job}-{started_ago.total_seconds():.0f}"
        start = now - started_ago
        history_id = repo.start_attempt(
            flow_run_id=run, attempt=1, job_name=job, param=None, schedule_id=None, start_at=start
        )
        if status is not JobStatus.PROCESSING:
            repo.finish_attempt(
                flow_run_id=run, attempt=1, status=status, job_name=job, param=None,
                schedule_id=None, error=error, start_at=start, end_at=start + timedelta(seconds=3),
            )  # fmt: skip
        return history_id

    running = attempt("sleep", JobStatus.PROCESSING, timedelta(minutes=5), None)
    recent_ok = attempt("processData", JobStatus.SUCCESS, timedelta(minutes=10), None)
    recent_fail = attempt("fail", JobStatus.FAILED, timedelta(minutes=30), MULTI_LINE_ERROR)
    older_fail = attempt("httpCall", JobStatus.FAILED, timedelta(hours=3), "HTTP 500")
    old_fail = attempt("fail", JobStatus.FAILED, timedelta(days=31), "old failure")
    old_ok = attempt("processData", JobStatus.SUCCESS, timedelta(days=40), None)

    by_job, by_status, since, limited, detail = run_concurrently(
        Call(["history", "--job", "fail"], env),
        Call(["history", "--status", "failed"], env),
        Call(["history", "--since", "1h"], env),
        Call(["history", "--limit", "1"], env),
        Call(["history", "show", str(recent_fail)], env),
    )

    assert "2 attempt(s), newest first" in by_job.stdout
    assert "Traceback (most recent call last):" in by_job.stdout  # the error's first line
    assert "disk full" not in by_job.stdout
    assert _history_ids(by_job.stdout) == [recent_fail, old_fail], by_job.stdout
    assert _history_ids(by_status.stdout) == [recent_fail, older_fail, old_fail], by_status.stdout
    assert _history_ids(since.stdout) == [running, recent_ok, recent_fail], since.stdout
    assert _history_ids(limited.stdout) == [running], limited.stdout

    fields = _detail_fields(detail.stdout)
    assert (fields["job"], fields["status"], fields["duration"]) == ("fail", "FAILED", "3.0s")
    output_lines = [line.rstrip() for line in detail.stdout.splitlines()]
    for line in MULTI_LINE_ERROR.splitlines():
        assert line in output_lines, f"{line!r} missing from:\n{detail.stdout}"

    every_id = {running, recent_ok, recent_fail, older_fail, old_fail, old_ok}
    assert {row.id for row in repo.list_history(HistoryFilter())} == every_id
    purged = run_cli("history", "purge", "--older-than", "30d", env=env)
    assert purged.stdout.startswith("purged 2 attempt(s) started before "), purged.stdout
    remaining = {row.id for row in repo.list_history(HistoryFilter())}
    assert remaining == {running, recent_ok, recent_fail, older_fail}
    # 0 means everything started before now, not "the default".
    everything = run_cli("history", "purge", "--older-than", "0s", env=env)
    assert everything.stdout.startswith("purged 4 attempt(s) started before "), everything.stdout
    assert repo.list_history(HistoryFilter()) == []


# -- 6. healthcheck --------------------------------------------------------------------


def test_reading_history_imports_neither_prefect_nor_alembic(env: dict[str, str]) -> None:
    """Importing them is most of a command's time (2.4 s against 0.5 s here)."""
    probe = (
        "import sys\n"
        "from jobctl.cli import cli\n"
        "cli.main(args=['history', '--limit', '5'], prog_name='jobctl', standalone_mode=False)\n"
        "print(sorted({name.split('.')[0] for name in sys.modules} & {'prefect', 'alembic'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_healthcheck_passes_with_a_migrated_database_and_a_prefect_api(
    env: dict[str, str], prefect_server: PrefectServer
) -> None:
    healthy = run_cli("healthcheck", env={**env, "PREFECT_API_URL": prefect_server.api_url})

    assert _checks(healthy.stdout) == {
        "database": "ok",
        "migrations": "ok",
        "prefect api": "ok",
    }, healthy.stdout
    assert "FAIL" not in healthy.stdout


def test_unmigrated_database_fails_healthcheck_and_commands_name_db_upgrade(
    unmigrated_database_url: str, make_env: EnvFactory, prefect_server: PrefectServer
) -> None:
    env = make_env(unmigrated_database_url, PREFECT_API_URL=prefect_server.api_url)

    health, listed = run_concurrently(
        Call(["healthcheck"], env, expect_rc=1), Call(["schedule", "list"], env, expect_rc=1)
    )

    if unmigrated_database_url.startswith("sqlite"):  # no file yet, and none made
        assert _checks(health.stdout) == {"database": "FAIL", "prefect api": "ok"}, health.stdout
        assert not Path(unmigrated_database_url.removeprefix("sqlite:///")).exists()
    else:
        assert _checks(health.stdout) == {
            "database": "ok",
            "migrations": "FAIL",
            "prefect api": "ok",
        }, health.stdout
    assert "`jobctl db upgrade`" in health.stdout
    assert "`jobctl db upgrade`" in _one_error_line(listed)
    run_cli("db", "upgrade", env=env)
    assert run_cli("schedule", "list", env=env).returncode == 0


# -- 7. unreachable database, no Prefect API -------------------------------------------


def test_unreachable_database_is_one_error_line_and_a_traceback_only_with_verbose(
    make_env: EnvFactory,
) -> None:
    env = make_env(UNREACHABLE_DATABASE_URL)

    quiet, verbose, sync = run_concurrently(
        Call(["schedule", "list"], env, expect_rc=1, process=True),
        Call(["-v", "schedule", "list"], env, expect_rc=1, process=True),
        Call(["sync", "--dry-run"], env, expect_rc=1),  # and no PREFECT_API_URL either
    )

    assert "cannot be reached" in _one_error_line(quiet)
    assert quiet.stdout == ""
    _one_error_line(sync)
    assert "Traceback (most recent call last)" in verbose.stderr
    assert "DatabaseUnavailable" in verbose.stderr


@pytest.mark.parametrize(
    "url",
    ["bogus://x", "not a url", "postgresql+nodriver://jobctl:s3cret@db/jobctl"],
    ids=["unknown-dialect", "unparsable", "unknown-driver"],
)
def test_a_database_url_jobctl_cannot_use_is_one_error_line_without_its_secret(
    make_env: EnvFactory, url: str
) -> None:
    env = make_env(url)

    listed = run_cli("schedule", "list", env=env, expect_rc=1)
    healthy = run_cli("healthcheck", env=env, expect_rc=1)

    assert "JOBCTL_DATABASE_URL is not a database URL" in _one_error_line(listed)
    assert "JOBCTL_DATABASE_URL is not a database URL" in healthy.stdout
    assert "s3cret" not in listed.stderr + healthy.stdout


def test_healthcheck_fails_without_database_or_api_and_says_what_to_do(
    make_env: EnvFactory,
) -> None:
    env = make_env(UNREACHABLE_DATABASE_URL)  # no PREFECT_API_URL

    health = run_cli("healthcheck", env=env, expect_rc=1)

    assert _checks(health.stdout) == {"database": "FAIL", "prefect api": "FAIL"}, health.stdout
    assert "JOBCTL_DATABASE_URL" in health.stdout
    assert "`jobctl up`" in health.stdout


# -- rows and settings the CLI must survive ---------------------------------------------


# Only SQLite can hold a param that is not JSON (PostgreSQL's jsonb refuses it).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_schedule_list_and_show_survive_a_row_whose_param_is_not_json(
    env: dict[str, str], repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    good = repo.add_schedule(schedule_factory()).id
    broken = repo.add_schedule(schedule_factory()).id
    with repo.engine.begin() as connection:
        connection.execute(
            text('UPDATE "JobSchedule" SET param = :param WHERE id = :id'),
            {"param": "{not json", "id": broken},
        )

    listed, shown = run_concurrently(
        Call(["schedule", "list"], env), Call(["schedule", "show", broken], env)
    )

    assert "2 schedule(s)" in listed.stdout
    assert good in listed.stdout and broken in listed.stdout
    assert "is not valid JSON" in listed.stdout
    assert "is not valid JSON" in shown.stdout


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_invalid_JOBCTL_TIMEZONE_is_refused_and_writes_nothing(
    env: dict[str, str], repo: Repository
) -> None:
    result = run_cli(*_add_args(), env={**env, "JOBCTL_TIMEZONE": "Mars/Base"}, expect_rc=1)

    line = _one_error_line(result)
    assert "timezone" in line.lower() and "Mars/Base" in line
    assert repo.list_schedules() == []


# -- 8. sync ---------------------------------------------------------------------------


def test_sync_dry_run_changes_nothing_then_sync_creates_and_a_second_sync_is_unchanged(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, env: dict[str, str]
) -> None:
    repo = sync_target.repository
    good = {repo.add_schedule(schedule_factory(cron=NEVER_DUE)).id for _ in range(2)}
    bad = repo.add_schedule(schedule_factory(cron=NEVER_DUE)).id
    with repo.engine.begin() as connection:
        connection.execute(
            text('UPDATE "JobSchedule" SET cron = :cron WHERE id = :id'),
            {"cron": "61 * * * *", "id": bad},
        )
    sync_env = {
        **env,
        "PREFECT_API_URL": sync_target.server.api_url,
        "JOBCTL_WORK_POOL": sync_target.settings.work_pool,
    }
    zero = {action.value: 0 for action in Action}

    dry = run_cli("sync", "--dry-run", env=sync_env)

    assert _sync_counts(dry.stdout) == {**zero, "create": 2, "rejected": 1}, dry.stdout
    assert "planned" in dry.stdout
    rejected_section = dry.stdout.split("rejected rows", 1)[1]
    assert bad in rejected_section
    assert "cron" in rejected_section and "61 * * * *" in rejected_section
    assert not any(schedule_id in rejected_section for schedule_id in good)
    assert sync_target.deployments() == {}

    applied = run_cli("sync", env=sync_env)

    assert _sync_counts(applied.stdout) == {**zero, "create": 2, "rejected": 1}, applied.stdout
    assert set(sync_target.deployments()) == good

    again = run_cli("sync", env=sync_env)

    assert _sync_counts(again.stdout) == {**zero, "unchanged": 2, "rejected": 1}, again.stdout
    assert set(sync_target.deployments()) == good


# -- 9. help ---------------------------------------------------------------------------


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    context = click.Context(group)
    for name in group.list_commands(context):  # jobctl's group loads its commands on use
        command = group.get_command(context, name)
        assert command is not None, name
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(_command_paths(command, (*prefix, name)))
    return paths


def test_help_of_jobctl_and_of_every_subcommand_exits_0(make_env: EnvFactory) -> None:
    env = make_env(UNREACHABLE_DATABASE_URL)  # help needs no database
    paths = [(), *_command_paths(jobctl_cli.cli)]
    assert ("schedule", "add") in paths and ("history", "purge") in paths

    results = run_concurrently(*(Call([*path, "--help"], env) for path in paths))

    for path, result in zip(paths, results, strict=True):
        assert result.stdout.startswith(f"Usage: {' '.join(['jobctl', *path])} "), result.stdout
        assert result.stderr == ""
    global_help = results[0].stdout
    assert "JOBCTL_DATABASE_URL" in global_help
    for path in paths:
        if len(path) == 1:
            assert f"  {path[0]} " in global_help, path
