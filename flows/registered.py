"""Entrypoint module of every job flow: ``flows.registered.<jobName>``.

Not named ``jobs``: Prefect puts this folder on ``sys.path`` when it loads a flow file, and
a ``flows/jobs.py`` would then shadow the ``jobs`` package.

A thin shim over ``JobFlows``: Prefect's loader asks this module for the attribute named
after the job, and that attribute is built then, with the run policy of the flow process
asking (an environment variable set by the deployment), before the engine reads retries and
the timeout. Nothing is read from the environment at import: a warm worker imports this
module once in its template, long before any run's environment exists.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import Flow

from flows import heartbeats
from flows.history import HistoryRecorder
from flows.job_flows import JobFlows
from jobctl.policy import RunPolicy
from jobctl.registry import load_jobs

ENTRYPOINT_MODULE = __name__

# Before any run of this process: heartbeats that do not hold a run's end back a second.
heartbeats.install()

recorder = HistoryRecorder()
job_flows = JobFlows(load_jobs(), ENTRYPOINT_MODULE, recorder)
# Policy-free flows: runs in this process (manual calls) and the parameter forms.
FLOWS: dict[str, Flow[..., Any]] = job_flows.policy_free()


def __getattr__(name: str) -> Flow[..., Any]:
    """``flows.registered.<job>``: the job's flow with this process's run policy."""
    if name not in job_flows:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return job_flows.flow(name, RunPolicy.from_env(os.environ))


def entrypoint(job_name: str) -> str:
    return f"{ENTRYPOINT_MODULE}.{job_name}"
