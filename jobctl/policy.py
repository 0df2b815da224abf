"""A schedule row's run policy: retries, backoff and timeout, in the units Prefect takes.

It travels from the row to the flow process in the deployment's job variables (an
environment variable), because Prefect reads retries and timeouts from the flow object.
It is read when the engine asks for the flow (``flows.registered``), never at import: a
flow process forked from a warm template inherits the template's imports, not the row's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

POLICY_ENV = "JOBCTL_RUN_POLICY"
SCHEDULE_ID_ENV = "JOBCTL_SCHEDULE_ID"


@dataclass(frozen=True)
class RunPolicy:
    retries: int = 0
    # Whole seconds: Prefect keeps a flow run's retry delay as an integer.
    retry_delay_s: int = 0
    backoff: str = "fixed"
    timeout_s: float | None = None
    # A run that starts later than this after its scheduled time is skipped, unless it is
    # the most recent of its deployment's due runs (catch up once). None: never skipped.
    misfire_grace_s: float | None = None

    def retry_delay_before(self, attempt: int) -> int:
        """Seconds to wait after failed ``attempt`` (1-based) before the next one."""
        if self.backoff == "exponential":
            return int(self.retry_delay_s * 2 ** (attempt - 1))
        return self.retry_delay_s

    def to_env(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RunPolicy | None:
        raw = environ.get(POLICY_ENV)
        if not raw:
            return None
        return cls(**json.loads(raw))


def from_row(
    *,
    max_retries: int | None,
    retry_delay_ms: int | None,
    retry_backoff: str,
    timeout_ms: int | None,
    misfire_grace_ms: int | None,
    default_retry_delay_ms: int,
    default_misfire_grace_ms: int,
) -> RunPolicy:
    delay_ms = default_retry_delay_ms if retry_delay_ms is None else retry_delay_ms
    return RunPolicy(
        retries=max_retries or 0,
        retry_delay_s=math.ceil(delay_ms / 1000),
        backoff=retry_backoff,
        timeout_s=timeout_ms / 1000 if timeout_ms else None,
        misfire_grace_s=(default_misfire_grace_ms if misfire_grace_ms is None else misfire_grace_ms)
        / 1000,
    )
