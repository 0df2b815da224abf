"""``GET /metrics``: what the tables say, through prometheus_client, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from prometheus_client.parser import text_string_to_metric_families

from jobctl import metrics_queries
from jobctl.api.app import create_app
from jobctl.metrics import HistoryTotals, MetricsSource
from jobctl.models import JobStatus
from jobctl.repository import Repository
from jobctl.settings import Settings
from tests.conftest import ScheduleFactory
from tests.fixtures.api import TOKEN, ApiClient, auth

PROMTOOL = shutil.which("promtool")
DEPLOY = Path(__file__).parents[2] / "deploy"
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: bytes) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def attempt(
    repo: Repository,
    run: str,
    number: int,
    status: JobStatus,
    *,
    schedule_id: str | None,
    job: str = "processData",
    seconds: float = 2.0,
    memory: int | None = 100 * 1024 * 1024,
    start: datetime = T0,
) -> None:
    if status is JobStatus.PROCESSING:
        repo.start_attempt(
            flow_run_id=run,
            attempt=number,
            job_name=job,
            param=None,
            schedule_id=schedule_id,
            start_at=start,
        )
        return
    repo.finish_attempt(
        flow_run_id=run,
        attempt=number,
        status=status,
        job_name=job,
        param=None,
        schedule_id=schedule_id,
        error="RuntimeError: boom" if status is JobStatus.FAILED else None,
        start_at=start,
        end_at=start + timedelta(seconds=seconds),
        peak_memory_bytes=memory,
    )


def folding() -> HistoryTotals:
    """Folds every row at once (no lag, no margin): the path a long-running API takes."""
    return HistoryTotals(fold_lag_s=0.0, fold_margin_ids=0)


FOLDS = pytest.mark.parametrize("fold", [False, True], ids=["live", "folded"])


@FOLDS
def test_scrape_counts_attempts_failed_runs_running_and_last_success(
    repo: Repository, schedule_factory: ScheduleFactory, fold: bool
) -> None:
    row = repo.add_schedule(schedule_factory(max_retries=2))
    sid = row.id
    for number in (1, 2, 3):  # a run that failed its three attempts
        attempt(repo, "run-1", number, JobStatus.FAILED, schedule_id=sid, seconds=10)
    attempt(repo, "run-2", 1, JobStatus.FAILED, schedule_id=sid, seconds=10)
    attempt(repo, "run-2", 2, JobStatus.SUCCESS, schedule_id=sid, seconds=0.5)  # succeeds
    attempt(repo, "run-3", 1, JobStatus.PROCESSING, schedule_id=sid)
    attempt(repo, "run-4", 1, JobStatus.SUCCESS, schedule_id=None, job="httpCall")

    source = MetricsSource(repo, folding() if fold else HistoryTotals())
    found = samples(source.scrape(now=T0 + timedelta(minutes=5)))

    assert (
        value(found, "jobctl_attempts_total", job="processData", schedule=sid, status="FAILED") == 4
    )
    assert (
        value(found, "jobctl_attempts_total", job="processData", schedule=sid, status="SUCCESS")
        == 1
    )
    assert (
        value(found, "jobctl_attempts_total", job="httpCall", schedule="manual", status="SUCCESS")
        == 1
    )
    assert value(found, "jobctl_attempts_running", job="processData", schedule=sid) == 1
    assert value(found, "jobctl_runs_failed_total", job="processData", schedule=sid) == 1
    ended = (T0 + timedelta(seconds=0.5)).timestamp()
    assert (
        value(found, "jobctl_last_success_timestamp_seconds", job="processData", schedule=sid)
        == ended
    )
    assert value(found, "jobctl_attempt_duration_seconds_count", job="processData") == 5
    assert value(found, "jobctl_attempt_duration_seconds_bucket", job="processData", le="1.0") == 1
    assert value(found, "jobctl_attempt_duration_seconds_bucket", job="processData", le="15.0") == 5
    assert value(found, "jobctl_attempt_duration_seconds_sum", job="processData") == pytest.approx(
        40.5
    )
    assert value(found, "jobctl_attempt_peak_memory_bytes_count", job="processData") == 5
    assert value(found, "jobctl_schedules", state="active") == 1


@FOLDS
def test_a_failed_attempt_with_retries_left_is_a_failed_run_only_once_no_retry_came(
    repo: Repository, schedule_factory: ScheduleFactory, fold: bool
) -> None:
    sid = repo.add_schedule(schedule_factory(max_retries=2)).id
    attempt(repo, "run-1", 1, JobStatus.FAILED, schedule_id=sid)
    source = MetricsSource(repo, folding() if fold else HistoryTotals(settle_s=3_600))

    soon = samples(source.scrape(now=T0 + timedelta(minutes=1)))
    later = samples(source.scrape(now=T0 + timedelta(hours=2)))

    assert value(soon, "jobctl_runs_failed_total", job="processData", schedule=sid) is None
    if not fold:  # folding settles after SETTLE_S, 6 hours: the same rule, later
        assert value(later, "jobctl_runs_failed_total", job="processData", schedule=sid) == 1


def test_an_open_attempt_is_counted_once_when_it_finishes_after_being_folded(
    repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    sid = repo.add_schedule(schedule_factory(max_retries=0)).id
    attempt(repo, "run-1", 1, JobStatus.PROCESSING, schedule_id=sid)
    totals = folding()
    source = MetricsSource(repo, totals)
    before = samples(source.scrape(now=T0))
    assert totals.open_ids, "the PROCESSING row is kept open, not folded"

    attempt(repo, "run-1", 1, JobStatus.FAILED, schedule_id=sid)
    for _ in range(3):  # folded on the first of these, then read from the totals
        after = samples(source.scrape(now=T0 + timedelta(minutes=1)))

    assert value(before, "jobctl_attempts_running", job="processData", schedule=sid) == 1
    assert value(after, "jobctl_attempts_running", job="processData", schedule=sid) is None
    assert (
        value(after, "jobctl_attempts_total", job="processData", schedule=sid, status="FAILED") == 1
    )
    assert value(after, "jobctl_runs_failed_total", job="processData", schedule=sid) == 1
    assert not totals.open_ids


def test_counters_do_not_go_down_when_history_is_purged(
    repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    sid = repo.add_schedule(schedule_factory()).id
    for index in range(5):
        attempt(
            repo,
            f"run-{index}",
            1,
            JobStatus.SUCCESS,
            schedule_id=sid,
            start=T0 + timedelta(minutes=index),
        )
    source = MetricsSource(repo, folding())
    before = samples(source.scrape(now=T0))

    assert repo.purge_history(T0 + timedelta(minutes=3, seconds=30)) == 4  # the newest stays
    attempt(repo, "run-new", 1, JobStatus.SUCCESS, schedule_id=sid, start=T0 + timedelta(days=2))
    after = samples(source.scrape(now=T0 + timedelta(days=2)))

    assert (
        value(before, "jobctl_attempts_total", job="processData", schedule=sid, status="SUCCESS")
        == 5
    )
    assert (
        value(after, "jobctl_attempts_total", job="processData", schedule=sid, status="SUCCESS")
        == 6
    )


def test_a_history_purged_to_the_last_row_is_counted_afresh_when_sqlite_reuses_its_ids(
    repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    sid = repo.add_schedule(schedule_factory()).id
    for index in range(3):
        attempt(repo, f"run-{index}", 1, JobStatus.SUCCESS, schedule_id=sid)
    source = MetricsSource(repo, folding())
    source.scrape(now=T0)

    assert repo.purge_history(T0 + timedelta(days=1)) == 3
    for index in range(4):  # ids 1-4 again on SQLite, 4-7 on PostgreSQL
        attempt(repo, f"new-{index}", 1, JobStatus.FAILED, schedule_id=sid)
    after = samples(source.scrape(now=T0 + timedelta(days=2)))

    failed = value(after, "jobctl_attempts_total", job="processData", schedule=sid, status="FAILED")
    success = value(
        after, "jobctl_attempts_total", job="processData", schedule=sid, status="SUCCESS"
    )
    assert failed == 4
    assert success == (None if "sqlite" in str(repo.engine.url) else 3)


def test_schedules_are_counted_active_paused_and_rejected(
    repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    repo.add_schedule(schedule_factory())
    repo.add_schedule(schedule_factory())
    repo.add_schedule(schedule_factory(is_active=False))
    repo.add_schedule(schedule_factory(job_name="noSuchJob"))
    source = MetricsSource(repo)
    found = samples(source.scrape())
    rejected = repo.add_schedule(schedule_factory(cron="61 * * * *"))
    again = samples(source.scrape())

    assert value(found, "jobctl_schedules", state="active") == 2
    assert value(found, "jobctl_schedules", state="paused") == 1
    assert value(found, "jobctl_schedules", state="rejected") == 1
    assert value(again, "jobctl_schedules", state="rejected") == 2, rejected.id


@pytest.fixture
def promtool() -> str:
    if PROMTOOL is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is required (apt-get install prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return PROMTOOL


@pytest.mark.usefixtures("prefect_server")
def test_promtool_accepts_a_scrape_of_the_api(
    database_url: str,
    repo: Repository,
    schedule_factory: ScheduleFactory,
    promtool: str,
    work_pool_name: str,
) -> None:
    sid = repo.add_schedule(schedule_factory(description='quotes " and \\ and\nnewline')).id
    attempt(repo, "run-1", 1, JobStatus.FAILED, schedule_id=sid)
    attempt(repo, "run-2", 1, JobStatus.SUCCESS, schedule_id=sid)
    attempt(repo, "run-3", 1, JobStatus.PROCESSING, schedule_id=None, job='odd"job\\name')
    metrics_queries.record_sync(
        repo, finished_at=T0, duration_s=0.25, drift=1
    )  # what the watcher writes after a sync
    settings = Settings(database_url=database_url, api_token=TOKEN, work_pool=work_pool_name)
    client = ApiClient(create_app(settings), secrets=(database_url, TOKEN))
    try:
        unauthorized = client.without_token().get("/metrics")
        response = client.get("/metrics", headers=auth())
    finally:
        client.shutdown()

    assert unauthorized.status_code == 401
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b"# TYPE jobctl_attempts_total counter" in response.content
    found = samples(response.content)
    assert value(found, "jobctl_prefect_up") == 1
    assert value(found, "jobctl_workers_online", pool=work_pool_name) == 0  # no worker polls it
    assert value(found, "jobctl_sync_last_success_timestamp_seconds") == T0.timestamp()
    assert value(found, "jobctl_sync_duration_seconds") == 0.25
    assert value(found, "jobctl_sync_drift") == 1
    check = subprocess.run(
        [promtool, "check", "metrics"], input=response.content, capture_output=True, timeout=60
    )
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_promtool_accepts_the_shipped_alert_rules(promtool: str) -> None:
    rules = DEPLOY / "prometheus" / "alerts.yml"
    check = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout


def test_unique_schedule_ids_render_as_labels(
    repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    ids = [repo.add_schedule(schedule_factory(), schedule_id=str(uuid4())).id for _ in range(3)]
    for index, sid in enumerate(ids):
        attempt(repo, f"run-{index}", 1, JobStatus.SUCCESS, schedule_id=sid)
    source = MetricsSource(repo)
    first = source.scrape(now=T0)
    second = source.scrape(now=T0)  # served from the renderer's cache: the same text

    found = samples(first)
    assert first == second
    for sid in ids:
        assert (
            value(found, "jobctl_attempts_total", job="processData", schedule=sid, status="SUCCESS")
            == 1
        )


def test_active_schedules_carry_the_period_of_their_cron(
    repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    every_5 = repo.add_schedule(schedule_factory(cron="*/5 * * * *")).id
    weekdays = repo.add_schedule(schedule_factory(cron="0 9 * * 1-5")).id
    paused = repo.add_schedule(schedule_factory(cron="@daily", is_active=False)).id

    found = samples(MetricsSource(repo).scrape())

    interval = "jobctl_schedule_interval_seconds"
    assert value(found, interval, job="processData", schedule=every_5) == 300
    assert value(found, interval, job="processData", schedule=weekdays) == 3 * 86_400  # Fri-Mon
    assert value(found, interval, job="processData", schedule=paused) is None


def test_promtool_parses_every_query_of_the_grafana_dashboard(
    promtool: str, tmp_path: Path
) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "jobctl.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    # Grafana's variables, replaced by what Grafana would put there.
    concrete = [e.replace("$__range", "1d").replace("$job", ".*") for e in exprs]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(concrete)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML

    check = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )

    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_metric_the_rules_and_the_dashboard_use_is_served(
    repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    sid = repo.add_schedule(schedule_factory()).id
    attempt(repo, "run-1", 1, JobStatus.FAILED, schedule_id=sid)
    metrics_queries.record_sync(repo, finished_at=T0, duration_s=1.0, drift=0)
    served = {
        family.name
        for family in text_string_to_metric_families(
            MetricsSource(repo).scrape(now=T0 + timedelta(days=1)).decode()
        )
    }
    served |= {"jobctl_workers_online", "jobctl_prefect_up"}  # from Prefect: test above
    used: set[str] = set()
    texts = [
        (DEPLOY / "prometheus" / "alerts.yml").read_text(),
        (DEPLOY / "grafana" / "jobctl.json").read_text(),
    ]
    for document in texts:
        used |= set(re.findall(r"jobctl_[a-z_]+", document))
    suffixes = ("_bucket", "_sum", "_count", "_total")
    normalized = {
        next((name.removesuffix(s) for s in suffixes if name.endswith(s)), name) for name in used
    }
    assert normalized - served == set()


def test_a_long_running_source_says_what_a_fresh_one_says_after_every_change(
    repo: Repository, schedule_factory: ScheduleFactory
) -> None:
    """The incremental paths (folding, open rows, re-rendering only touched samples) against
    a source that reads everything afresh, round after round."""
    ids = [repo.add_schedule(schedule_factory(max_retries=1)).id for _ in range(3)]
    long_running = MetricsSource(repo, folding())
    later = T0 + timedelta(minutes=1)
    rounds = [
        lambda: attempt(repo, "r1", 1, JobStatus.PROCESSING, schedule_id=ids[0]),
        lambda: attempt(repo, "r1", 1, JobStatus.FAILED, schedule_id=ids[0]),
        lambda: attempt(repo, "r1", 2, JobStatus.SUCCESS, schedule_id=ids[0], start=later),
        lambda: attempt(repo, "r2", 1, JobStatus.FAILED, schedule_id=ids[1]),
        lambda: attempt(repo, "r2", 2, JobStatus.FAILED, schedule_id=ids[1], start=later),
        lambda: attempt(repo, "r3", 1, JobStatus.SUCCESS, schedule_id=None, job="httpCall"),
        lambda: None,  # nothing new: every sample from the cache
    ]
    for index, change in enumerate(rounds):
        change()
        now = T0 + timedelta(minutes=5)
        ours = samples(long_running.scrape(now=now))
        fresh = samples(MetricsSource(repo, folding()).scrape(now=now))
        assert ours == fresh, f"round {index}"
    assert value(ours, "jobctl_runs_failed_total", job="processData", schedule=ids[1]) == 1
    assert value(ours, "jobctl_attempts_running", job="processData", schedule=ids[0]) is None


@pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)
def test_a_scrape_says_prefect_is_down_instead_of_failing(database_url: str) -> None:
    settings = Settings(database_url=database_url, api_token=TOKEN)
    client = ApiClient(create_app(settings), secrets=(database_url, TOKEN))
    try:
        with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:1/api"}):
            response = client.get("/metrics", headers=auth())
    finally:
        client.shutdown()

    assert response.status_code == 200
    found = samples(response.content)
    assert value(found, "jobctl_prefect_up") == 0
    assert not [key for key in found if key[0] == "jobctl_workers_online"]
