"""Prometheus metrics from the tables, for ``GET /metrics`` (``prometheus_client`` text format).

Per job and schedule: attempts by status, runs that finally failed, attempts running,
the last success; per job: attempt duration and peak memory histograms; the count of
schedules active, paused and rejected.

A scrape stays cheap at a million history rows: the JobHistory rows whose numbers can no
longer change are folded once into totals kept here (``HistoryTotals``), and each scrape
reads only the rows after the folded ones and the few still open. The counters therefore
count from the table as it was when the API started plus every attempt since: purging old
history does not make them go down (Prometheus counters must not). The schedule states
are recomputed only when the table's change counter moved, and the text of unchanged
series is reused (``Renderer``).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from croniter import croniter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.utils import floatToGoString
from sqlalchemy.orm import Session

from jobctl import alert_problems, errors, metrics_queries, registry, status_queries, validation
from jobctl.cron import ALIASES
from jobctl.metrics_queries import DURATION_BUCKETS_S, MEMORY_BUCKETS_BYTES
from jobctl.models import JobStatus, utcnow
from jobctl.repository import Repository, open_maintenance

logger = logging.getLogger("jobctl.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MANUAL = "manual"  # the schedule label of runs started by hand (no schedule)
# Rows are folded once they are this old (by id, see ``HistoryTotals``): longer than any
# history write stays uncommitted. At least FOLD_MARGIN_IDS of the newest ids stay open.
FOLD_LAG_S = 60.0
FOLD_MARGIN_IDS = 100
# A FAILED attempt with retries left that saw no retry within this long ended its run.
SETTLE_S = 6 * 3_600.0
INTERVAL_FROM = datetime(2026, 1, 1, tzinfo=UTC)
INTERVAL_FIRES = 40

Key = tuple[str, str]  # (job, schedule)


@dataclass
class Histogram:
    count: int = 0
    total: float = 0.0
    buckets: list[int] = field(default_factory=list)

    def add(self, count: int, total: float, buckets: Sequence[int]) -> None:
        self.count += count
        self.total += total
        if not self.buckets:
            self.buckets = [0] * len(buckets)
        for index, value in enumerate(buckets):
            self.buckets[index] += value


@dataclass
class Counts:
    """Everything the metrics say about attempts, summed over groups."""

    finished: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    running: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    finally_failed: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    last_success: dict[Key, datetime] = field(default_factory=dict)
    durations: dict[str, Histogram] = field(default_factory=lambda: defaultdict(Histogram))
    memory: dict[str, Histogram] = field(default_factory=lambda: defaultdict(Histogram))
    # The (job, schedule) keys whose numbers may differ from the previous scrape's; None:
    # not known (the first scrape), compare everything.
    touched: set[Key] | None = None

    def add(self, groups: metrics_queries.Aggregate, *, foldable: bool | None = None) -> None:
        """Add the groups (only those whose ``foldable`` is this, unless None)."""
        for group in groups.schedules:
            if foldable is not None and group.foldable is not foldable:
                continue
            key = (group.job_name, group.schedule_id or MANUAL)
            if group.status is JobStatus.PROCESSING:
                self.running[key] += group.attempts
            else:
                self.finished[(*key, group.status.value)] += group.attempts
            if group.finally_failed:
                self.finally_failed[key] += group.finally_failed
            if group.status is JobStatus.SUCCESS and group.last_end_at is not None:
                known = self.last_success.get(key)
                if known is None or group.last_end_at > known:
                    self.last_success[key] = group.last_end_at
        for job in groups.jobs:
            if foldable is not None and job.foldable is not foldable:
                continue
            self.durations[job.job_name].add(
                job.duration_count, job.duration_sum_s, job.duration_buckets
            )
            self.memory[job.job_name].add(
                job.memory_count, job.memory_sum_bytes, job.memory_buckets
            )

    def plus(self, groups: metrics_queries.Aggregate) -> Counts:
        """A copy of these counts with the groups that are not foldable added."""
        copy = Counts()
        copy.finished.update(self.finished)
        copy.running.update(self.running)
        copy.finally_failed.update(self.finally_failed)
        copy.last_success.update(self.last_success)
        for job, histogram in self.durations.items():
            copy.durations[job] = Histogram(histogram.count, histogram.total, [*histogram.buckets])
        for job, histogram in self.memory.items():
            copy.memory[job] = Histogram(histogram.count, histogram.total, [*histogram.buckets])
        copy.add(groups, foldable=False)
        return copy


class HistoryTotals:
    """Settled attempts folded into totals; the rest read again on every scrape.

    JobHistory ids grow with every insert, and a settled row (see
    ``metrics_queries.settled_expression``) never changes again. Rows up to ``folded_id``
    are in ``totals`` except the ids in ``open_ids`` (unsettled when folded). Each scrape
    folds up to the highest id seen ``FOLD_LAG_S`` ago or up to all but the newest
    ``FOLD_MARGIN_IDS``, whichever is further: every smaller id must be committed by then
    (a history write is one short statement; far fewer than that are ever in flight).
    """

    def __init__(
        self,
        *,
        fold_lag_s: float = FOLD_LAG_S,
        fold_margin_ids: int = FOLD_MARGIN_IDS,
        settle_s: float = SETTLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fold_lag_s = fold_lag_s
        self.fold_margin_ids = fold_margin_ids
        self.settle_s = settle_s
        self._clock = clock
        self._reset()

    def _reset(self) -> None:
        self.totals = Counts()
        self.folded_id = 0
        self._folded_identity: tuple[Any, ...] | None = None
        self.open_ids: set[int] = set()
        self._seen: list[tuple[float, int]] = []  # (clock, max id) of recent scrapes
        self._last_keys: set[Key] | None = None  # the keys the previous scrape read

    def _fold_target(self, max_id: int) -> int:
        now = self._clock()
        self._seen.append((now, max_id))
        old = [seen for seen in self._seen if seen[0] <= now - self.fold_lag_s]
        lagged = max((max_seen for _, max_seen in old), default=0)
        if old:  # keep the newest of the old observations and everything after it
            self._seen = [seen for seen in self._seen if seen[0] >= old[-1][0]]
        return max(lagged, max_id - self.fold_margin_ids, self.folded_id)

    def counts(self, session: Session, now: datetime) -> Counts:
        settle_before = metrics_queries.settle_before(now, self.settle_s)
        max_id = metrics_queries.max_history_id(session)
        reuses_ids = session.get_bind().dialect.name == "sqlite"  # PostgreSQL: a sequence
        if (
            reuses_ids
            and self.folded_id
            and metrics_queries.row_identity(session, self.folded_id) != self._folded_identity
        ):
            # The newest folded row was deleted: SQLite hands its id out again, so which
            # rows were folded is no longer known. Count the table afresh (a counter reset).
            logger.warning("history rows up to id %s were deleted: recounting", self.folded_id)
            self._reset()
        target = self._fold_target(max_id)
        scanned = metrics_queries.Selection(
            after_id=self.folded_id, up_to_id=None, ids=self.open_ids, settle_before=settle_before
        )
        folds = target > self.folded_id or bool(self.open_ids)
        still_open = (
            metrics_queries.unsettled_ids(session, dataclasses.replace(scanned, up_to_id=target))
            if folds
            else set()
        )
        groups = metrics_queries.aggregate(session, scanned, fold_up_to=target, open_ids=still_open)
        if folds:
            self.open_ids = still_open
            self.totals.add(groups, foldable=True)
            self.folded_id = target
            self._folded_identity = (
                metrics_queries.row_identity(session, target) if reuses_ids else None
            )
        counts = self.totals.plus(groups)  # what was not folded: read again next time
        keys = {(g.job_name, g.schedule_id or MANUAL) for g in groups.schedules}
        # Totals change only by folding, and folded groups are among these: a key that
        # neither this scrape nor the previous one read has the numbers it had.
        counts.touched = None if self._last_keys is None else keys | self._last_keys
        self._last_keys = keys
        return counts


@dataclass(frozen=True)
class ScheduleStates:
    version: int
    alert_target_problems: Mapping[str, str]  # as the sync left them (see alert_problems)
    counts: dict[str, int]  # active / paused / rejected
    intervals_s: dict[Key, float]  # of the active rows


@functools.lru_cache(maxsize=4_096)
def cron_interval_s(five: str) -> float:
    """The longest gap between two of the next fire times of a (normalised) cron: its period,
    weekends and month ends included. Evaluated in UTC from a fixed instant: good enough for
    "no success within N periods", not for exact fire times (``jobctl.cron`` does those)."""
    fires = croniter(ALIASES.get(five, five), INTERVAL_FROM)
    times = [fires.get_next(float) for _ in range(INTERVAL_FIRES)]
    return max(later - earlier for earlier, later in itertools.pairwise(times))


def schedule_states(
    repository: Repository,
    problems: Mapping[str, str] = alert_problems.NONE,
    default_alert_to: str | None = None,
) -> ScheduleStates:
    """How many rows are active, paused (``isActive`` false) and rejected (by validation, or
    by the last sync for an alert target in ``problems``, which it found no block for)."""
    version = repository.schedule_version()
    known_jobs = registry.job_names()
    counts = {"active": 0, "paused": 0, "rejected": 0}
    intervals: dict[Key, float] = {}
    for row in repository.list_schedules():
        try:
            good = validation.validated(row, known_jobs, row.id)
        except errors.InvalidSchedule:
            counts["rejected"] += 1
            continue
        if alert_problems.reason_for(row.alert_to, problems, default_alert_to) is not None:
            counts["rejected"] += 1
            continue
        if not good.is_active:
            counts["paused"] += 1
            continue
        counts["active"] += 1
        intervals[(str(good.job_name), row.id)] = cron_interval_s(str(good.cron))
    return ScheduleStates(
        version=version, alert_target_problems=problems, counts=counts, intervals_s=intervals
    )


class _One:
    """A collector of one ready family, for ``generate_latest``."""

    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> Iterator[Metric]:
        yield self.family


Sample = tuple[tuple[str, ...], float]
# How prometheus_client writes a bucket bound (``le``), untyped in its source.
_go_float: Callable[[float], str] = floatToGoString


class Renderer:
    """The text of families, each sample line rendered once per value.

    At 10,000 schedules a scrape holds tens of thousands of samples of which a few hundred
    change between two scrapes: only those go through ``generate_latest`` again (all in one
    call per family); the lines of the others are reused. Given the keys that may have
    changed (``changed``), the others are not even looked at.
    """

    def __init__(self) -> None:
        self._lines: dict[str, dict[tuple[str, ...], tuple[float, bytes]]] = {}
        self._headers: dict[str, bytes] = {}
        self._texts: dict[str, bytes] = {}  # the last text of each family

    def render(
        self,
        make: Callable[[], Metric],
        values: Mapping[Any, Any],  # keys: tuples of label values
        *,
        changed: Iterable[Any] | None = None,
        value_of: Callable[[Any], float] = float,
    ) -> bytes:
        """``values``: labels -> value (a missing key: no sample); ``changed``: the only
        keys whose value or presence may differ from the previous call (None: any)."""
        empty = make()
        name = empty.name
        if name not in self._headers:
            self._headers[name] = generate_latest(_One(empty))
        known = self._lines.get(name)
        if known is None or changed is None:
            lines: dict[tuple[str, ...], tuple[float, bytes]] = {}
            stale = known or {}
            fresh: list[tuple[tuple[str, ...], float]] = []
            for labels, raw in values.items():
                value = value_of(raw)
                line = stale.get(labels)
                if line is not None and line[0] == value:
                    lines[labels] = line
                else:
                    fresh.append((labels, value))
                    lines[labels] = (value, b"")
        else:
            lines = known
            fresh = []
            removed = False
            for labels in changed:
                raw = values.get(labels)
                if raw is None:
                    removed = lines.pop(labels, None) is not None or removed
                    continue
                value = value_of(raw)
                line = lines.get(labels)
                if line is None or line[0] != value:
                    fresh.append((labels, value))
                    lines[labels] = (value, b"")
            if not fresh and not removed and name in self._texts:
                return self._texts[name]  # nothing changed: the same text as last time
        if fresh:
            family = make()
            for labels, value in fresh:
                family.add_metric(list(labels), value)  # type: ignore[attr-defined]
            text = generate_latest(_One(family))
            rendered = text.split(b"\n")[2:-1]  # after HELP and TYPE; one line a sample
            if len(rendered) != len(fresh):
                raise RuntimeError(f"{name}: {len(rendered)} lines for {len(fresh)} samples")
            for (labels, value), text_line in zip(fresh, rendered, strict=True):
                lines[labels] = (value, text_line + b"\n")
        self._lines[name] = lines
        text = self._headers[name] + b"".join(line for _, line in lines.values())
        self._texts[name] = text
        return text


def _counter(
    name: str, documentation: str, labels: Sequence[str]
) -> Callable[[], CounterMetricFamily]:
    return lambda: CounterMetricFamily(name, documentation, labels=labels)


def _gauge(name: str, documentation: str, labels: Sequence[str]) -> Callable[[], GaugeMetricFamily]:
    return lambda: GaugeMetricFamily(name, documentation, labels=labels)


def _histogram(
    name: str, documentation: str, bounds: Sequence[float], histograms: dict[str, Histogram]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=["job"])
    for job in sorted(histograms):
        histogram = histograms[job]
        if histogram.count == 0 and not histogram.buckets:
            continue
        cumulative = histogram.buckets or [0] * len(bounds)
        buckets = [
            *((_go_float(bound), float(n)) for bound, n in zip(bounds, cumulative, strict=True)),
            ("+Inf", float(histogram.count)),
        ]
        family.add_metric([job], buckets, histogram.total)
    return family


@dataclass(frozen=True)
class PrefectHealth:
    pool: str
    up: bool
    workers_online: int | None  # None when Prefect could not be read


def _prefect_families(prefect: PrefectHealth | None) -> bytes:
    if prefect is None:
        return b""
    up = GaugeMetricFamily(
        "jobctl_prefect_up",
        "Whether the Prefect API answered this scrape.",
        value=float(prefect.up),
    )
    text = generate_latest(_One(up))
    if prefect.workers_online is not None:
        workers = GaugeMetricFamily(
            "jobctl_workers_online",
            "Workers of the pool that Prefect reports ONLINE.",
            labels=["pool"],
        )
        workers.add_metric([prefect.pool], float(prefect.workers_online))
        text += generate_latest(_One(workers))
    return text


class MetricsSource:
    """Everything ``GET /metrics`` serves; one per API process, safe to call from threads."""

    def __init__(
        self,
        repository: Repository,
        totals: HistoryTotals | None = None,
        *,
        default_alert_to: str | None = None,
    ) -> None:
        self.repository = repository
        self.totals = totals or HistoryTotals()
        self.default_alert_to = default_alert_to
        self.renderer = Renderer()
        self._states: ScheduleStates | None = None
        self._lock = threading.Lock()

    def _schedule_states(self, session: Session) -> tuple[ScheduleStates, bool]:
        """The states, and whether they were read again (the rows or the sync's alert
        target problems changed)."""
        version = metrics_queries.schedule_version(session)
        problems = alert_problems.read_in(session)
        if (
            self._states is None
            or self._states.version != version
            or self._states.alert_target_problems != problems
        ):
            self._states = schedule_states(self.repository, problems, self.default_alert_to)
            return self._states, True
        return self._states, False

    def scrape(self, now: datetime | None = None, prefect: PrefectHealth | None = None) -> bytes:
        """The text of every family; ``prefect``: what the caller read from Prefect (the
        workers online), None when it could not."""
        with self._lock:
            # One transaction for every question of a scrape (a round trip each, not three).
            with self.repository.session() as session:
                now = now or utcnow()
                text = self._scrape(session, now) + self._sync(session, now)
            return text + _prefect_families(prefect)

    def _sync(self, session: Session, now: datetime) -> bytes:
        health = metrics_queries.sync_health(session)
        pause = open_maintenance(session)
        paused = pause is not None and pause.is_on(now)
        families: list[Metric] = [
            GaugeMetricFamily(
                "jobctl_maintenance_paused",
                "1 while a maintenance pause keeps every schedule paused (jobctl pause --all).",
                value=float(paused),
            )
        ]
        if pause is not None and paused:
            families.append(
                GaugeMetricFamily(
                    "jobctl_maintenance_paused_since_timestamp_seconds",
                    "When the maintenance pause on now began (Unix seconds).",
                    value=pause.started_at.timestamp(),
                )
            )
        if health.last_success_at is not None:
            families.append(
                GaugeMetricFamily(
                    "jobctl_sync_last_success_timestamp_seconds",
                    "When the sync watcher last synced the table into Prefect (Unix seconds).",
                    value=health.last_success_at.timestamp(),
                )
            )
        if health.duration_s is not None:
            families.append(
                GaugeMetricFamily(
                    "jobctl_sync_duration_seconds",
                    "How long the last successful sync took.",
                    value=health.duration_s,
                )
            )
        if health.drift is not None:
            families.append(
                GaugeMetricFamily(
                    "jobctl_sync_drift",
                    "Deployments the last full read found changed outside jobctl (and put back).",
                    value=float(health.drift),
                )
            )
        return b"".join(generate_latest(_One(family)) for family in families)

    def _scrape(self, session: Session, now: datetime) -> bytes:
        counts = self.totals.counts(session, now)
        states, states_read = self._schedule_states(session)
        touched = counts.touched
        statuses = (JobStatus.SUCCESS.value, JobStatus.FAILED.value)
        render = self.renderer.render
        parts = [
            render(
                _counter(
                    "jobctl_attempts",
                    "Finished attempts (JobHistory rows) by job, schedule and status.",
                    ["job", "schedule", "status"],
                ),
                counts.finished,
                changed=None if touched is None else [(*k, st) for k in touched for st in statuses],
            ),
            render(
                _gauge(
                    "jobctl_attempts_running",
                    "Attempts started and not finished (status PROCESSING).",
                    ["job", "schedule"],
                ),
                {key: n for key, n in counts.running.items() if n},
            ),
            render(
                _counter(
                    "jobctl_runs_failed",
                    "Runs whose last attempt failed (no retry left or none came).",
                    ["job", "schedule"],
                ),
                counts.finally_failed,
                changed=touched,
            ),
            render(
                _counter(
                    "jobctl_missed_runs",
                    "Due runs that started no attempt within their misfire grace "
                    "(recorded by the sync watcher in jobctl_missed_run).",
                    ["job", "schedule"],
                ),
                status_queries.missed_counts(session),
            ),
            render(
                _gauge(
                    "jobctl_last_success_timestamp_seconds",
                    "End time of the last successful attempt (Unix seconds).",
                    ["job", "schedule"],
                ),
                counts.last_success,
                changed=touched,
                value_of=datetime.timestamp,
            ),
            render(
                _gauge(
                    "jobctl_schedule_interval_seconds",
                    "Period of an active schedule's cron (the longest gap between fire times).",
                    ["job", "schedule"],
                ),
                states.intervals_s,
                changed=None if states_read else (),
            ),
            render(
                _gauge(
                    "jobctl_schedules",
                    "JobSchedule rows by state: active, paused (isActive false), rejected "
                    "(invalid, or alerting a block the last sync did not find: the sync pauses "
                    "their deployment).",
                    ["state"],
                ),
                {(state,): n for state, n in states.counts.items()},
            ),
            generate_latest(
                _One(
                    _histogram(
                        "jobctl_attempt_duration_seconds",
                        "Duration of finished attempts (endAt - startAt), by job.",
                        DURATION_BUCKETS_S,
                        counts.durations,
                    )
                )
            ),
            generate_latest(
                _One(
                    _histogram(
                        "jobctl_attempt_peak_memory_bytes",
                        "Peak resident memory of finished attempts, by job.",
                        MEMORY_BUCKETS_BYTES,
                        counts.memory,
                    )
                )
            ),
        ]
        return b"".join(parts)
