"""The throughput baseline: ``processData`` as a plain Prefect flow, none of jobctl's layer.

No history recorder, no state hooks, no run policy, no misfire check, no heartbeats: the
job function called from a ``@flow``. Its deployment's entrypoint is this module
(``bench.plain_flows.process_data_plain``), loaded by the flow process as jobctl's are.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from jobs import examples

FLOW_NAME = "processDataPlain"
ENTRYPOINT = f"{__name__}.process_data_plain"


@flow(name=FLOW_NAME)
def process_data_plain(param: list[str] | None = None, user: str = "system") -> dict[str, Any]:
    """processData called directly."""
    return examples.process_data(param, user)
