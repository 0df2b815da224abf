"""A daily job that works on "yesterday" relative to the time its run was scheduled for."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from jobctl import runtime
from jobctl.registry import job

logger = logging.getLogger("jobctl.jobs")


@job(name="dailyReport")
def daily_report(param: dict[str, str] | None, user: str) -> dict[str, str]:
    """Report on the day before the run's scheduled time, in ``param["timezone"]`` (UTC
    unless given); with ``param["ledger"]``, also append the report to that file as a
    JSON line.

    The day comes from ``jobctl.runtime.scheduled_time()``, not the clock: a run that
    starts late, a retry and a backfilled run report the day they were meant for.
    """
    options = param or {}
    zone = ZoneInfo(options.get("timezone", "UTC"))
    scheduled = runtime.scheduled_time()
    day = scheduled.astimezone(zone).date() - timedelta(days=1)
    report = {"day": day.isoformat(), "scheduledFor": scheduled.isoformat(), "user": user}
    logger.info("dailyReport of %s (scheduled for %s)", report["day"], report["scheduledFor"])
    ledger = options.get("ledger")
    if ledger:
        with Path(ledger).open("a", encoding="utf-8") as out:
            out.write(json.dumps(report) + "\n")
    return report
