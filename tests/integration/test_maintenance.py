"""The maintenance pause on SQLite and PostgreSQL: its table, the CLI, missed runs, status
and metrics (the sync and the watcher against a real Prefect server: test_maintenance_sync)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from jobctl import errors, status
from jobctl.cli.stack import Stack, status_line
from jobctl.metrics import MetricsSource
from jobctl.prefect import missed_runs
from jobctl.prefect.gateway.client import ClientGateway
from jobctl.prefect.missed_runs import TickReport
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.conftest import ScheduleFactory
from tests.fixtures.cli import cli_env, run_cli

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)
EVERY_MINUTE = {"cron": "* * * * *", "timezone": "UTC", "misfire_grace_ms": 30_000}


def _pause(repo: Repository, now: datetime = T0, until: datetime | None = None) -> None:
    repo.start_maintenance(reason="db upgrade", set_by="ops", until=until, now=now)


# -- the table ---------------------------------------------------------------------------


def test_a_pause_is_kept_apart_from_every_rows_is_active(
    repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    on = repo.add_schedule(schedule_factory())
    off = repo.add_schedule(schedule_factory(is_active=False))
    rows_before = repo.list_schedules()

    started = repo.start_maintenance(reason="db upgrade", set_by="ops", until=None, now=T0)

    assert repo.get_maintenance_or_none() == started
    assert (started.reason, started.set_by, started.started_at) == ("db upgrade", "ops", T0)
    assert started.is_on(T0 + timedelta(days=365))
    assert repo.list_schedules() == rows_before

    ended = repo.end_maintenance(ended_by="ops2", now=T0 + timedelta(minutes=5))

    assert ended is not None and ended.ended_at == T0 + timedelta(minutes=5)
    assert ended.ended_by == "ops2" and repo.get_maintenance_or_none() is None
    assert {r.id: r.is_active for r in repo.list_schedules()} == {on.id: True, off.id: False}


def test_a_second_pause_while_one_is_on_is_refused_and_the_first_stays(repo: Repository) -> None:
    _pause(repo)

    with pytest.raises(errors.AlreadyPaused, match="db upgrade"):
        repo.start_maintenance(reason="other", set_by="x", until=None, now=T0)

    current = repo.get_maintenance_or_none()
    assert current is not None and current.reason == "db upgrade"


def test_at_most_one_pause_is_open_even_when_written_by_plain_sql(repo: Repository) -> None:
    _pause(repo)

    with pytest.raises(IntegrityError), repo.engine.begin() as connection:
        connection.execute(
            text(
                'INSERT INTO jobctl_maintenance (reason, "setBy", "startedAt") '
                "VALUES ('sql', 'sql', :at)"
            ),
            {"at": T0},
        )


def test_resume_without_a_pause_changes_nothing(repo: Repository) -> None:
    assert repo.end_maintenance(ended_by="ops", now=T0) is None
    assert repo.list_maintenance(ended_after=LONG_AGO) == []


def test_a_pause_whose_until_passed_ends_at_its_until_and_a_new_one_may_start(
    repo: Repository,
) -> None:
    until = T0 + timedelta(seconds=90)
    _pause(repo, until=until)

    assert repo.end_expired_maintenance(T0 + timedelta(seconds=89)) is None
    ended = repo.end_expired_maintenance(T0 + timedelta(seconds=95))

    assert ended is not None and (ended.ended_at, ended.ended_by) == (until, "until")
    second = repo.start_maintenance(
        reason="again", set_by="ops", until=None, now=T0 + timedelta(minutes=2)
    )
    assert [p.id for p in repo.list_maintenance(ended_after=LONG_AGO)] == [ended.id, second.id]


def test_resume_after_the_until_passed_records_the_until_as_the_end(repo: Repository) -> None:
    until = T0 + timedelta(seconds=90)
    _pause(repo, until=until)

    ended = repo.end_maintenance(ended_by="ops", now=T0 + timedelta(minutes=10))

    assert ended is not None and (ended.ended_at, ended.ended_by) == (until, "until")


def test_starting_and_ending_a_pause_wake_the_sync_and_catching_up_does_not(
    repo: Repository,
) -> None:
    version = repo.schedule_version()
    _pause(repo)
    paused_version = repo.schedule_version()
    ended = repo.end_maintenance(ended_by="ops", now=T0 + timedelta(minutes=1))
    ended_version = repo.schedule_version()
    assert ended is not None
    assert repo.list_uncaught_maintenance(T0 + timedelta(minutes=2)) == [ended]

    repo.mark_maintenance_caught_up(ended.id, T0 + timedelta(minutes=2))

    assert version < paused_version < ended_version == repo.schedule_version()
    assert repo.list_uncaught_maintenance(T0 + timedelta(minutes=3)) == []


# -- missed runs, status, metrics ----------------------------------------------------------


def _tick(repo: Repository, settings: Settings, now: datetime) -> TickReport:
    async def run() -> TickReport:
        async with get_client() as client:
            return await missed_runs.tick(settings, repo, ClientGateway(client), now=now)

    return asyncio.run(run())


@pytest.mark.usefixtures("prefect_server")
def test_fire_times_inside_a_pause_are_not_missed_and_later_ones_are(
    repo: Repository, schedule_factory: ScheduleFactory, database_url: str
) -> None:
    row = repo.add_schedule(schedule_factory(**EVERY_MINUTE))
    with repo.engine.begin() as connection:
        connection.execute(
            text('UPDATE "JobSchedule" SET "createdAt" = :at, "updatedAt" = :at'),
            {"at": T0 - timedelta(seconds=10)},
        )
    settings = Settings(database_url=database_url)
    _pause(repo, now=T0)
    repo.end_maintenance(ended_by="ops", now=T0 + timedelta(minutes=10, seconds=5))

    during = _tick(repo, settings, T0 + timedelta(minutes=10, seconds=20))
    after = _tick(repo, settings, T0 + timedelta(minutes=12, seconds=40))

    assert during.detected == 0
    # 09:11 and 09:12 fell due after the resume and no attempt started.
    assert after.detected == 2 and after.recorded == 2
    lines = status.read_status(settings, repo, now=T0 + timedelta(minutes=10, seconds=40))
    assert [line.state for line in lines if line.schedule_id == row.id] == [status.ACTIVE]


def test_status_does_not_call_a_due_time_inside_a_pause_missed(
    repo: Repository, schedule_factory: ScheduleFactory, database_url: str
) -> None:
    row = repo.add_schedule(schedule_factory(**EVERY_MINUTE))
    with repo.engine.begin() as connection:
        connection.execute(
            text('UPDATE "JobSchedule" SET "createdAt" = :at, "updatedAt" = :at'),
            {"at": T0 - timedelta(hours=2)},
        )
    settings = Settings(database_url=database_url)
    now = T0 + timedelta(minutes=5)
    assert status.read_status(settings, repo, now=now)[0].state == status.MISSED

    _pause(repo, now=T0)

    (line,) = status.read_status(settings, repo, now=now)
    assert (line.schedule_id, line.state) == (row.id, status.ACTIVE)


def _gauges(repo: Repository, now: datetime) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(MetricsSource(repo).scrape(now=now).decode())
        for sample in family.samples
        if sample.name.startswith("jobctl_maintenance")
    }


def test_metrics_say_whether_a_pause_is_on_and_since_when(repo: Repository) -> None:
    assert _gauges(repo, T0) == {"jobctl_maintenance_paused": 0.0}

    _pause(repo, now=T0, until=T0 + timedelta(minutes=1))

    assert _gauges(repo, T0 + timedelta(seconds=30)) == {
        "jobctl_maintenance_paused": 1.0,
        "jobctl_maintenance_paused_since_timestamp_seconds": T0.timestamp(),
    }
    assert _gauges(repo, T0 + timedelta(minutes=2)) == {"jobctl_maintenance_paused": 0.0}


# -- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return cli_env(database_url=database_url, home=tmp_path, pycache=tmp_path / "pycache")


def test_cli_pause_and_resume_all(
    repo: Repository, schedule_factory: ScheduleFactory, env: dict[str, str]
) -> None:
    repo.add_schedule(schedule_factory())
    repo.add_schedule(schedule_factory(is_active=False))

    paused = run_cli("pause", "--all", "--reason", "DB upgrade", "--until", "2h", env=env)
    again = run_cli("pause", "--all", "--reason", "other", env=env, expect_rc=1)
    shown = run_cli("status", env=env)
    as_json = run_cli("status", "--json", env=env)

    pause = repo.get_maintenance_or_none()
    assert pause is not None and pause.reason == "DB upgrade" and pause.until is not None
    assert timedelta(minutes=119) < pause.until - pause.started_at <= timedelta(hours=2)
    assert pause.set_by.startswith("cli:")
    assert "maintenance pause on since" in paused.stdout and "DB upgrade" in paused.stdout
    assert "already paused" in again.stderr and "DB upgrade" in again.stderr
    assert "MAINTENANCE: maintenance pause on since" in shown.stdout
    assert "DB upgrade" in shown.stdout and "until" in shown.stdout
    assert "MAINTENANCE" in as_json.stderr and "MAINTENANCE" not in as_json.stdout

    resumed = run_cli("resume", "--all", env=env)
    twice = run_cli("resume", "--all", env=env)

    assert "1 active schedule(s) resume at the next sync, 1 stay disabled" in resumed.stdout
    assert "no maintenance pause was on" in twice.stdout
    assert "MAINTENANCE" not in run_cli("status", env=env).stdout
    assert [r.is_active for r in repo.list_schedules()] == [True, False]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pause", "--reason", "x"), "pass --all"),
        (("resume",), "pass --all"),
        (("pause", "--all"), "Missing option '--reason'"),
        (("pause", "--all", "--reason", "  "), "needs a reason"),
        (("pause", "--all", "--reason", "x", "--until", "tomorrow"), "neither an ISO-8601"),
        (("pause", "--all", "--reason", "x", "--until", "2020-01-01T00:00:00Z"), "already passed"),
    ],
)
@pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)
def test_cli_pause_refuses_bad_input_and_pauses_nothing(
    repo: Repository, env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = run_cli(*args, env=env, expect_rc=2)  # a usage error, as click's own are

    assert message in result.stderr
    assert repo.get_maintenance_or_none() is None


def test_cli_disables_and_enables_every_row_of_one_job(
    repo: Repository, schedule_factory: ScheduleFactory, env: dict[str, str]
) -> None:
    mine = [repo.add_schedule(schedule_factory(job_name="processData")) for _ in range(2)]
    other = repo.add_schedule(schedule_factory(job_name="httpCall"))

    disabled = run_cli("schedule", "disable", "--job", "processData", env=env)
    states = {r.id: r.is_active for r in repo.list_schedules()}
    enabled = run_cli("schedule", "enable", "--job", "processData", env=env)

    assert "disabled 2 schedule(s) of processData" in disabled.stdout
    assert states == {mine[0].id: False, mine[1].id: False, other.id: True}
    assert "enabled 2 schedule(s) of processData" in enabled.stdout
    assert all(r.is_active for r in repo.list_schedules())
    missing = run_cli("schedule", "disable", "--job", "noSuchJob", env=env, expect_rc=1)
    assert "no schedule runs the job 'noSuchJob'" in missing.stderr
    both = run_cli("schedule", "disable", other.id, "--job", "httpCall", env=env, expect_rc=2)
    assert "not both" in both.stderr
    assert (
        run_cli("schedule", "disable", other.id, env=env).stdout.strip() == f"disabled {other.id}"
    )


def test_ups_status_line_says_a_pause_is_on_since_when_and_why(
    repo: Repository, database_url: str, tmp_path: Path
) -> None:
    stack = Stack(settings=Settings(database_url=database_url), state_dir=tmp_path)
    assert "maintenance" not in status_line(stack, repo)

    repo.start_maintenance(
        reason="db upgrade", set_by="cli:ops", until=T0 + timedelta(days=3650), now=T0
    )

    line = status_line(stack, repo)
    assert "maintenance pause on since 2026-12-01 09:00:00 UTC by cli:ops: db upgrade" in line
    assert "until 2036-" in line
