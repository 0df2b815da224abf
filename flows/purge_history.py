"""The ``purge-history`` flow: delete attempts older than the retention, in batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger

from jobctl import audit, db
from jobctl.repository import Repository
from jobctl.settings import Settings


@flow(name="purge-history")
def purge_history(retention_days: int | None = None) -> int:
    """Delete JobHistory rows older than ``retention_days`` (default: the setting), and
    audit rows of schedule changes older than ``JOBCTL_AUDIT_RETENTION_DAYS``."""
    settings = Settings()
    days = retention_days or settings.history_retention_days
    cutoff = datetime.now(UTC) - timedelta(days=days)
    engine = db.create_db_engine(settings.database_url)
    audit_cutoff = datetime.now(UTC) - timedelta(days=settings.audit_retention_days)
    try:
        purged = Repository(engine).purge_history(cutoff)
        changes = audit.purge(Repository(engine), audit_cutoff)
    finally:
        engine.dispose()
    logger = get_run_logger()
    logger.info("purged %d attempt(s) started before %s", purged, cutoff.isoformat())
    logger.info("purged %d audited schedule change(s) before %s", changes, audit_cutoff.isoformat())
    return purged
