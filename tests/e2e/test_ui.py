"""The Prefect UI, rendered by a real headless Chromium, lists every synced deployment."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ScheduleFactory
from tests.fixtures.processes import wait_for
from tests.fixtures.sync import SyncTarget

CHROMIUM = shutil.which("chromium")
# For this offline machine: no background networking, no updates, no first-run.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
    "--virtual-time-budget=20000",
]


def _render(url: str, profile: Path, *extra: str) -> str:
    done = subprocess.run(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _text(dom: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)))


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's chromium is required (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)
def test_the_deployments_page_lists_every_synced_row(
    chromium: str, sync_target: SyncTarget, schedule_factory: ScheduleFactory, tmp_path: Path
) -> None:
    jobs = {"processData": ["alpha"], "sleep": 1, "httpCall": {"url": "http://127.0.0.1:9/"}}
    rows = [
        sync_target.repository.add_schedule(
            schedule_factory(
                description=f"ui check {n}: 每日資料清理任務", job_name=job, param=param
            )
        )
        for n, (job, param) in enumerate(jobs.items())
    ]
    sync_target.sync()
    deployments = sync_target.deployments()
    base = sync_target.server.ui_url

    # The pool's deployments list shows every deployment of the rows (the server is shared
    # by the whole test session: its all-deployments page shows ten per page)...
    pool_page = f"{base}/work-pools/work-pool/{sync_target.settings.work_pool}?tab=Deployments"

    def listing_with_all() -> str | None:
        text = _text(_render(pool_page, tmp_path / "profile", "--dump-dom"))
        return text if all(deployments[r.id].name in text for r in rows) else None

    listing = wait_for(
        listing_with_all, timeout_s=180, interval_s=1, what="every deployment on the page"
    )
    for row in rows:
        assert deployments[row.id].name in listing
    # ...and each deployment's page shows its description (in its Description tab).
    for row in rows:
        page = _text(
            _render(
                f"{base}/deployments/deployment/{deployments[row.id].id}?tab=Description",
                tmp_path / "profile",
                "--dump-dom",
            )
        )
        assert row.description in page

    _render(pool_page, tmp_path / "profile", f"--screenshot={tmp_path / 'deployments.png'}")
    assert (tmp_path / "deployments.png").stat().st_size > 10_000
