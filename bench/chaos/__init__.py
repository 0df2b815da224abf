"""``python -m bench chaos``: a chaos soak with an exact account.

Overlapping faults over time, on the whole system (PostgreSQL tables, a Prefect server on
PostgreSQL, two workers, the watcher, the API serving ``call-job``), then an invariant
checked exactly over every fire time (``account``). See ``bench/README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import harness
from bench.chaos import soak

DEFAULT_MINUTES = 30.0
DEFAULT_SEED = 18
DEFAULT_ROWS = 32


def run(
    minutes: float, seed: int, rows: int, console: Console, *, write_report: bool = True
) -> bool:
    """Run a soak, save ``bench/results/chaos-<time>.json``, print and report it.

    True when the account found no violation.
    """
    console.print(f"chaos soak: {minutes:g} min, seed {seed}, {rows} rows every minute")
    result = soak.run(seed, minutes, rows)
    path = harness.write_results("chaos", result)
    print_result(result, console)
    console.print(f"wrote {path.relative_to(harness.RESULTS_DIR.parent.parent)}")
    if write_report:
        from bench.chaos import report  # ``python -m bench.chaos.report`` runs it as main

        report.write_section(path)
    return not result["account"]["violations"]


def print_result(result: dict[str, Any], console: Console) -> None:
    found = result["account"]
    table = Table(title=f"chaos soak, seed {result['seed']}", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    for kind, count in result["faults"].items():
        table.add_row(f"fault: {kind}", str(count))
    table.add_row("fire times due", str(found["fire_times_due"]))
    for kind, count in found["outcomes"].items():
        table.add_row(f"outcome: {kind}", str(count))
    for kind, count in found["calls"].items():
        table.add_row(f"call-job: {kind}", str(count))
    for kind, count in found["violations_by_kind"].items():
        table.add_row(f"[red]violation: {kind}[/]", str(count))
    console.print(table)
    for violation in found["violations"][:30]:
        console.print(f"  {json.dumps(violation)}")


def latest_result() -> Path | None:
    found = sorted(harness.RESULTS_DIR.glob("chaos-*.json"))
    return found[-1] if found else None
