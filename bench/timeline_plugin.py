"""A pytest plugin for ``bench.suite_cost``: when each test ran, and in which process.

Loaded with ``-p bench.timeline_plugin``; it writes only when ``TIMELINE_ENV`` names a file.
Each line is JSON, ``[pid, nodeid, start, end]`` (``time.time()``), appended by the process
that ran the test: an xdist worker, or pytest itself without xdist (the xdist controller
sees every test's start and end too, and writes nothing).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

TIMELINE_ENV = "JOBCTL_TEST_TIMELINE"

_runs_tests = True
_started: dict[str, float] = {}


def pytest_configure(config: Any) -> None:
    global _runs_tests
    _runs_tests = hasattr(config, "workerinput") or not config.getoption("numprocesses", None)


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    _started[nodeid] = time.time()


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    start = _started.pop(nodeid, None)
    path = os.environ.get(TIMELINE_ENV)
    if _runs_tests and path and start is not None:
        with open(path, "a", encoding="utf-8") as timeline:
            timeline.write(json.dumps([os.getpid(), nodeid, start, time.time()]) + "\n")
