"""A flow process forked from the warm template keeps the template's logging configuration
only when the run's settings would build the same one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# In a fresh interpreter: import Prefect (which configures logging from the environment),
# remember that as the template does, then become a flow process with ``CHANGES`` in its
# environment, counting Prefect's ``setup_logging`` calls.
BECOME = """
import json, logging, os, sys
import prefect
import prefect.logging.configuration as configuration
from jobctl_warm import child

child.remember_logging()
calls = []
setup = configuration.setup_logging
configuration.setup_logging = lambda **kw: calls.append(kw) or setup(**kw)
env = {**os.environ, **json.loads(sys.argv[1])}
child._become(child.Start(cwd=os.getcwd(), env=env))
print(json.dumps({
    "setups": len(calls),
    "prefect": logging.getLogger("prefect").level,
    "flow_runs": logging.getLogger("prefect.flow_runs").getEffectiveLevel(),
}))
"""


def _become(changes: dict[str, str]) -> dict[str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_LOGGING_LEVEL"] = "INFO"
    done = subprocess.run(
        [sys.executable, "-c", BECOME, json.dumps(changes)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, int] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_run_with_the_templates_logging_settings_keeps_its_configuration() -> None:
    became = _become({"PREFECT__FLOW_RUN_ID": "7c1f5d1e-0000-4000-8000-000000000000"})
    assert became["setups"] == 0
    assert became["prefect"] == 20  # INFO, as the template configured it


@pytest.mark.parametrize(
    ("changes", "logger", "level"),
    [
        pytest.param({"PREFECT_LOGGING_LEVEL": "DEBUG"}, "prefect", 10, id="level"),
        pytest.param(
            {"PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "ERROR"},
            "flow_runs",
            40,
            id="one-key-override",
        ),
    ],
)
def test_a_run_whose_settings_configure_logging_otherwise_gets_its_own(
    changes: dict[str, str], logger: str, level: int
) -> None:
    became = _become(changes)
    assert became["setups"] == 1
    assert became[logger] == level
