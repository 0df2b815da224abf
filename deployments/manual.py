"""One unscheduled deployment per registered job, ``<job>/manual``, for runs on demand.

The Prefect UI's Run button, ``prefect deployment run 'processData/manual'``, ``jobctl
call --no-wait`` and the API's ``wait: false`` all create runs of it on the workers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

MANUAL_NAME = "manual"
MANUAL_TAG = "jobctl-manual"
DEFAULT_POOL = "jobctl"


def manual_name(work_pool_name: str) -> str:
    """``manual`` for the default pool, ``manual-<pool>`` for any other.

    Prefect names deployments per flow, not per pool: two installations sharing a server
    would otherwise move one ``<job>/manual`` back and forth between their pools.
    """
    return MANUAL_NAME if work_pool_name == DEFAULT_POOL else f"{MANUAL_NAME}-{work_pool_name}"


@dataclass(frozen=True)
class ManualSpec:
    flow_name: str
    entrypoint: str
    work_pool_name: str
    parameter_schema: dict[str, Any]
    description: str

    @property
    def version(self) -> str:
        canonical = json.dumps(
            [self.entrypoint, self.work_pool_name, self.parameter_schema, self.description],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def manual_deployment_name(job_name: str, work_pool_name: str) -> str:
    return f"{job_name}/{manual_name(work_pool_name)}"
