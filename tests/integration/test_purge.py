"""Purging a large history on PostgreSQL, in batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from jobctl.repository import Repository

ROWS = 100_000


@pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_purge_of_100000_rows_deletes_exactly_the_old_ones(repo: Repository) -> None:
    now = datetime.now(UTC)
    with repo.engine.begin() as conn:
        # Half older than 30 days, half newer, one per minute going back from now.
        conn.execute(
            text(
                'INSERT INTO "JobHistory" ("jobName", status, "startAt", "endAt", '
                '"flowRunId", attempt) '
                "SELECT 'processData', 'SUCCESS', :now - make_interval(mins => n), "
                ":now - make_interval(mins => n), 'run-' || n, 1 "
                "FROM generate_series(1, :rows) AS n"
            ),
            {"now": now, "rows": ROWS},
        )
    cutoff = now - timedelta(minutes=ROWS // 2) - timedelta(seconds=30)
    to_purge = repo.count_history_before(cutoff)
    heard: list[int] = []

    purged = repo.purge_history(cutoff, batch_size=5_000, on_batch=heard.append)

    assert purged == to_purge == ROWS // 2
    assert heard == [*range(5_000, ROWS // 2 + 1, 5_000), ROWS // 2]
    assert repo.count_history() == ROWS // 2
    with repo.engine.connect() as conn:
        oldest = conn.execute(text('SELECT min("startAt") FROM "JobHistory"')).scalar_one()
    assert oldest >= cutoff
