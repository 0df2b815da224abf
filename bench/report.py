"""Plain tables for the benchmarks whose lines are not sync scenarios."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass
class Line:
    """One measure: a value, its unit, its target and whether it is met, the load meanwhile."""

    measure: str
    value: float | None
    unit: str
    target: str | None = None
    met: bool | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("runs", "rows", "calls", "writes", "processes"):
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def print_lines(console: Console, title: str, lines: Sequence[Line], caption: str = "") -> None:
    table = Table(
        title=title, title_justify="left", caption=caption or None, caption_justify="left"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("target")
    table.add_column("met?", justify="center")
    table.add_column("note")
    for line in lines:
        met = "—" if line.met is None else ("[green]yes[/]" if line.met else "[red]NO[/]")
        table.add_row(
            line.measure, fmt(line.value, line.unit), line.unit, line.target or "—", met, line.note
        )
    console.print(table)


def missed(lines: Sequence[Line]) -> list[str]:
    return [line.measure for line in lines if line.met is False]
