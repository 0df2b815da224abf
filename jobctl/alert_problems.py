"""Which rows the sync rejects for their alert target, for the readers that cannot ask
Prefect (status, metrics, the missed-run monitor).

A row's alert target is its ``alertTo``, else ``JOBCTL_ALERT_TO``. The sync resolves each
target to a Prefect notification block and ``replace``-s the table with the ones it could
not; a row is rejected while its target is among them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from jobctl.alert_problem_model import AlertTargetProblem
from jobctl.repository import Repository

NONE: Mapping[str, str] = MappingProxyType({})


def target_of(alert_to: Any, default: str | None) -> str | None:
    """The block slug a row's alerts go to: its ``alertTo``, else the default."""
    slug = alert_to if alert_to not in (None, "") else default
    return str(slug) if slug else None


def reason_for(alert_to: Any, problems: Mapping[str, str], default: str | None) -> str | None:
    """Why the sync rejects a row with this ``alertTo``, or None."""
    slug = target_of(alert_to, default)
    return None if slug is None else problems.get(slug)


def replace(repository: Repository, problems: Mapping[str, str], now: datetime) -> None:
    """Keep exactly ``problems`` (slug -> reason): what the sync found just now. No write
    when the table holds them already (the watcher's every sync calls this)."""
    with repository.session() as session:
        if read_in(session) == dict(problems):
            return
        session.execute(delete(AlertTargetProblem))
        session.add_all(
            AlertTargetProblem(slug=slug, reason=reason, foundAt=now)
            for slug, reason in problems.items()
        )


def read(repository: Repository) -> dict[str, str]:
    """Slug -> reason, as the last sync left them; a failed read raises."""
    with repository.session() as session:
        return read_in(session)


def read_in(session: Session) -> dict[str, str]:
    """``read`` in the caller's transaction."""
    rows = session.execute(select(AlertTargetProblem.slug, AlertTargetProblem.reason))
    return {str(slug): str(reason) for slug, reason in rows}
