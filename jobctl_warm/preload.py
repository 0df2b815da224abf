"""Imported once by the warm template: everything a flow run needs, nothing that runs.

An import that fails here (a syntax error in ``jobs/``) is reported and skipped: the
flow processes import it again and fail with the traceback in the run's logs, as they
would on Prefect's process worker. After this, the template must hold no thread, client
or socket: it is forked for every run.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import sys
import threading
import traceback

from jobctl_warm.child import SYS_PATH_ENV

MODULES = (
    "prefect.engine",
    "prefect.flow_engine",
    "prefect._internal.metrics",
    "prefect.runner._hook_runner",
    "jobs",
    "flows.registered",
    "jobctl_warm.child",
    # Imported by the first history write of a run otherwise (0.23 s each time).
    "psycopg",
    "sqlalchemy.dialects.postgresql.psycopg",
    "sqlalchemy.dialects.sqlite.pysqlite",
)


def preload() -> None:
    if raw := os.environ.get(SYS_PATH_ENV):
        sys.path[:] = json.loads(raw)
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:
            print(f"jobctl-warm template: could not import {name}:", file=sys.stderr)
            traceback.print_exc()
    _warm_caches()
    # What the template imported lives as long as every flow process: keep it out of the
    # garbage collector's passes (and their copy-on-write page faults) in each of them.
    gc.collect()
    gc.freeze()
    extra = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if extra:
        print(f"jobctl-warm template: threads after preload: {extra}", file=sys.stderr)


def _warm_caches() -> None:
    """What every run would otherwise compute again: the TLS context of Prefect's clients,
    Prefect's logging configuration, the list of time zones the settings validate against."""
    from jobctl import cron
    from jobctl.prefect.gateway import tls
    from jobctl_warm import child

    tls.prebuild()
    child.remember_logging()
    cron.is_time_zone("UTC")


preload()
