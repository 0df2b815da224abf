"""Entrypoint module of every job flow: ``flows.registered.<jobName>``.

Not named ``jobs``: Prefect puts this folder on ``sys.path`` when it loads a flow file, and
a ``flows/jobs.py`` would then shadow the ``jobs`` package.

Importing it builds one flow per registered job as a module attribute. In a flow process
started for a schedule row, the row's policy (an environment variable set by the
deployment) is applied here, before Prefect's engine reads retries and the timeout.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import Flow

from flows.history import HistoryRecorder
from flows.job_flows import build_flow
from jobctl.policy import RunPolicy
from jobctl.registry import load_jobs

ENTRYPOINT_MODULE = __name__

_policy = RunPolicy.from_env(os.environ)
recorder = HistoryRecorder()
FLOWS: dict[str, Flow[..., Any]] = {
    name: build_flow(job, _policy, ENTRYPOINT_MODULE, recorder) for name, job in load_jobs().items()
}
globals().update(FLOWS)


def entrypoint(job_name: str) -> str:
    return f"{ENTRYPOINT_MODULE}.{job_name}"
