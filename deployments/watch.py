"""``jobctl sync --watch``: sync on every change of the table, and fully now and then;
reconcile history, and every minute find missed runs and ping the heartbeat (``monitor``).

A change is seen through the trigger-maintained counter (``repository.schedule_version``),
polled every ``watch_interval_s``; on PostgreSQL a LISTEN on ``jobctl_schedule`` wakes the
watcher at once. Between full re-reads of Prefect, the watcher plans against what it
last applied, so an unchanged table costs one small query and no Prefect call.

Starting or ending a maintenance pause bumps the same counter; a pause set with ``until``
ends with nothing changing in the table, so the watcher wakes up at that time and syncs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import psycopg
from sqlalchemy.engine import make_url

from deployments.plan import Deployed
from deployments.sync import SyncReport, sync
from jobctl import errors, metrics_queries
from jobctl.prefect import monitor, reconciler
from jobctl.prefect.gateway import Connect
from jobctl.prefect.gateway.client import connect as connect_prefect
from jobctl.repository import NOTIFY_CHANNEL, Repository
from jobctl.settings import Settings
from jobctl.supervision import Backoff, sleep_unless_stopped

logger = logging.getLogger("jobctl.watch")

# A database or Prefect server back from an outage is noticed within this many seconds;
# a failed round costs one query, so there is little to save by waiting longer.
MAX_BACKOFF_S = 10.0
LISTEN_RETRY_S = 1.0


async def watch(
    settings: Settings,
    repository: Repository,
    *,
    stop: asyncio.Event | None = None,
    on_sync: Callable[[SyncReport], None] | None = None,
    on_error: Callable[[Exception], None] | None = None,
    connect: Connect = connect_prefect,
) -> None:
    """Sync on every change and fully now and then, until ``stop`` is set. Each round
    opens its own gateway with ``connect``.

    No error ends it: a failed sync or reconciliation is logged with its cause, reported to
    ``on_error``, and tried again after a delay that doubles while failures go on (up to
    ``MAX_BACKOFF_S``); anything else that fails restarts the loop the same way.
    """
    stop = stop or asyncio.Event()
    backoff = Backoff(settings.watch_interval_s, MAX_BACKOFF_S)
    while not stop.is_set():
        try:
            await _watch(settings, repository, stop, backoff, on_sync, on_error, connect)
        except Exception as exc:
            delay_s = backoff.next_delay_s()
            logger.exception("the watcher failed; restarting it in %.1f s", delay_s)
            if on_error is not None:
                on_error(exc)
            await sleep_unless_stopped(stop, delay_s)


async def _watch(
    settings: Settings,
    repository: Repository,
    stop: asyncio.Event,
    backoff: Backoff,
    on_sync: Callable[[SyncReport], None] | None,
    on_error: Callable[[Exception], None] | None,
    connect: Connect,
) -> None:
    known: list[Deployed] | None = None
    last_version: int | None = None
    last_full = 0.0
    last_reconcile = 0.0
    last_monitor = 0.0
    pause_until: datetime | None = None  # the end of the maintenance pause on, if set
    async with _notifications(settings) as woken:
        while not stop.is_set():
            try:
                version = await asyncio.to_thread(repository.schedule_version)
                full_due = time.monotonic() - last_full >= settings.full_resync_interval_s
                # Nothing in the table changes when a pause's ``until`` passes: the sync
                # ends it (and resumes the rows) when asked then.
                pause_over = pause_until is not None and datetime.now(UTC) >= pause_until
                if version != last_version or full_due or known is None or pause_over:
                    async with connect() as gateway:
                        report = await sync(
                            settings, repository, gateway, known=None if full_due else known
                        )
                    known = report.deployed_after
                    pause_until = None if report.maintenance is None else report.maintenance.until
                    # Writes a full read found with the table unchanged: edits by hand.
                    drift = (
                        len(report.plan.writes) if full_due and version == last_version else None
                    )
                    last_version = version
                    if full_due:
                        last_full = time.monotonic()
                    backoff.reset()
                    await asyncio.to_thread(
                        metrics_queries.record_sync,
                        repository,
                        finished_at=datetime.now(UTC),
                        duration_s=report.duration_s,
                        drift=drift,
                    )
                    if on_sync is not None:
                        on_sync(report)
            except Exception as exc:
                known = None  # Prefect may have changed meanwhile: read it all next time
                await _failed("sync", exc, stop, backoff, on_error)
                continue
            if time.monotonic() - last_reconcile >= settings.reconcile_interval_s:
                try:
                    async with connect() as gateway:
                        await reconciler.reconcile_with_settings(settings, repository, gateway)
                    last_reconcile = time.monotonic()
                except Exception as exc:
                    await _failed("history reconciliation", exc, stop, backoff, on_error)
                    continue
            if time.monotonic() - last_monitor >= monitor.INTERVAL_S:
                await monitor.one_round(settings, repository, connect)  # logs its failures
                last_monitor = time.monotonic()
            await _wait(woken, stop, _wait_s(settings.watch_interval_s, pause_until))


async def _failed(
    what: str,
    exc: Exception,
    stop: asyncio.Event,
    backoff: Backoff,
    on_error: Callable[[Exception], None] | None,
) -> None:
    """Log why ``what`` failed (a traceback for what jobctl did not expect) and wait."""
    delay_s = backoff.next_delay_s()
    logger.error(
        "%s failed, retrying in %.1f s: %s: %s",
        what,
        delay_s,
        type(exc).__name__,
        exc,
        exc_info=not isinstance(exc, errors.JobctlError),
    )
    if on_error is not None:
        on_error(exc)
    await sleep_unless_stopped(stop, delay_s)


def _wait_s(interval_s: float, pause_until: datetime | None) -> float:
    """How long to wait for a change: less when a maintenance pause ends sooner."""
    if pause_until is None:
        return interval_s
    return max(0.0, min(interval_s, (pause_until - datetime.now(UTC)).total_seconds()))


async def _wait(woken: asyncio.Event, stop: asyncio.Event, timeout_s: float) -> None:
    stopping = asyncio.ensure_future(stop.wait())
    notified = asyncio.ensure_future(woken.wait())
    try:
        await asyncio.wait({stopping, notified}, timeout=timeout_s, return_when="FIRST_COMPLETED")
    finally:
        stopping.cancel()
        notified.cancel()
        woken.clear()


@contextlib.asynccontextmanager
async def _notifications(settings: Settings) -> AsyncIterator[asyncio.Event]:
    """An event set on every NOTIFY (PostgreSQL); never set on SQLite, which is polled."""
    woken = asyncio.Event()
    url = make_url(settings.database_url)
    if url.get_backend_name() != "postgresql":
        yield woken
        return
    listener = asyncio.create_task(_listen(url.set(drivername="postgresql"), woken))
    try:
        yield woken
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def _listen(url: object, woken: asyncio.Event) -> None:
    dsn = url.render_as_string(hide_password=False)  # type: ignore[attr-defined]
    backoff = Backoff(LISTEN_RETRY_S, MAX_BACKOFF_S)
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                backoff.reset()
                woken.set()  # anything missed while not listening is picked up now
                async for _ in conn.notifies():
                    woken.set()
        except Exception as exc:  # polling goes on meanwhile: only the wake-ups are late
            delay_s = backoff.next_delay_s()
            logger.warning("LISTEN connection lost (%s); reconnecting in %.1f s", exc, delay_s)
            await asyncio.sleep(delay_s)
