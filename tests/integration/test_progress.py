"""The sync tells its progress as it applies changes, through the CLI too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ScheduleFactory
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.sync import RequestLog, SyncTarget

# One backend is enough: progress is the sync's, not the database's.
pytestmark = [
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


def test_sync_reports_each_change_it_applies_and_makes_no_extra_call(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    def add_rows(hour: int) -> None:
        for minute in range(5):
            sync_target.repository.add_schedule(schedule_factory(cron=f"{minute} {hour} * * *"))

    sync_target.repository.add_schedule(schedule_factory(cron="0 2 * * *"))
    sync_target.sync()  # the pool, its queue, the automation, the manual deployments
    add_rows(3)
    calls: list[tuple[int, int]] = []
    with_progress = RequestLog()

    report = sync_target.sync(
        log=with_progress, progress=lambda done, total: calls.append((done, total))
    )

    assert report.ok
    assert calls == [(done, 5) for done in range(6)]
    add_rows(4)
    without = RequestLog()
    sync_target.sync(log=without)
    assert with_progress.counts() == without.counts()


def test_jobctl_sync_prints_its_report_on_stdout_and_its_progress_only_on_stderr(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, tmp_path: Path
) -> None:
    sync_target.repository.add_schedule(schedule_factory(cron="0 4 * * *"))
    env = cli_env(
        database_url=sync_target.settings.database_url,
        home=tmp_path,
        pycache=tmp_path / "pycache",
        PREFECT_API_URL=sync_target.server.api_url,
        JOBCTL_WORK_POOL=sync_target.settings.work_pool,
    )

    result = run_cli("sync", env=env)

    assert "sync applied" in result.stdout
    # A progress line comes after 5 s of work (tests/unit/test_progress.py), which a
    # one-row sync takes only on a loaded machine: never on stdout.
    assert "sync: deployment changes" not in result.stdout
