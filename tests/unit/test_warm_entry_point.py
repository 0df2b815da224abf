"""The ``prefect.collections`` entry point: Prefect imports it at server start and whenever
it looks worker types up, so it must not import the jobs, the flows or a database driver."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

HEAVY = ("jobs", "flows.registered", "jobctl.settings", "sqlalchemy", "psycopg")


def test_the_entry_point_names_the_worker_module() -> None:
    [point] = [e for e in entry_points(group="prefect.collections") if e.name == "jobctl_warm"]
    assert point.value == "jobctl_warm.worker"


def test_importing_the_worker_type_imports_nothing_heavy() -> None:
    code = (
        "import sys, json; from prefect.workers.base import BaseWorker; "
        "import jobctl_warm.worker as w; "
        "assert BaseWorker.get_worker_class_from_type('jobctl-warm') is w.WarmWorker; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == [], done.stderr
