"""The ``sync-schedules`` flow: one sync, its plan published as a markdown artifact."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact

from deployments import sync as schedule_sync
from jobctl import db
from jobctl.prefect import reconciler
from jobctl.prefect.gateway.client import connect
from jobctl.repository import Repository
from jobctl.settings import Settings

ARTIFACT_KEY = "jobctl-sync-plan"


@flow(name="sync-schedules", log_prints=True)
async def sync_schedules(dry_run: bool = False) -> dict[str, int]:
    """Mirror every JobSchedule row into a Prefect deployment (as `jobctl sync` does),
    then close history that runs could not write themselves."""
    settings = Settings()
    engine = db.create_db_engine(settings.database_url)
    try:
        repository = Repository(engine)
        async with connect() as gateway:
            report = await schedule_sync.sync(settings, repository, gateway, dry_run=dry_run)
            if not dry_run:
                await reconciler.reconcile_with_settings(settings, repository, gateway)
    finally:
        engine.dispose()
    await acreate_markdown_artifact(
        key=ARTIFACT_KEY, markdown=report.markdown(), description=report.summary()
    )
    get_run_logger().info(report.summary())
    if not report.ok:
        raise RuntimeError(f"{len(report.failures)} change(s) failed; see the artifact")
    return {action.value: count for action, count in report.plan.counts().items()}
