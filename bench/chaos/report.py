"""The "Chaos soak" section of docs/RELIABILITY.md, from a chaos result JSON.

``write_section`` (re)writes just that section, between its markers, so a soak updates
the report without the 25 minutes of the full regeneration; the full one
(``bench.reliability_report``) writes it too, from the newest ``chaos-*.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "RELIABILITY.md"
BEGIN = "<!-- chaos soak: generated from bench/results/chaos-*.json -->"
END = "<!-- end of chaos soak -->"


def section(path: Path) -> list[str]:
    data: dict[str, Any] = json.loads(path.read_text())
    found = data.get("account", {})
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    violations = found.get("violations", [])
    lines = [
        BEGIN,
        "## Chaos soak",
        "",
        "Overlapping faults over time, then an exact account of every fire time "
        "(`python -m bench chaos`, `bench/chaos/`): PostgreSQL tables and a Prefect server "
        "on PostgreSQL (a cluster of the soak's own), two `jobctl-warm` workers, the watcher "
        "and the API serving `call-job` to a small client. Every 30 to 90 s one or two faults "
        "(seeded); each killed process is restarted 3 s later, as systemd's "
        "`Restart=always` would.",
        "",
        f"From `{shown}`: seed **{data.get('seed')}** "
        f"(replay: `python -m bench chaos --minutes {data.get('minutes'):g} "
        f"--seed {data.get('seed')} --chaos-rows {data.get('rows')}`), "
        f"{data.get('minutes'):g} min of faults, {data.get('rows')} rows firing every minute "
        f"(and one filling memory when told), {data.get('wall_s', 0) / 60:.0f} min in all; "
        f"window {data.get('window_start', '?')} to {data.get('window_end', '?')}; "
        f"load then {data.get('machine', {}).get('loadavg')}.",
        "",
        "| faults injected | count |",
        "| --- | --- |",
        *(f"| {kind} | {count} |" for kind, count in data.get("faults", {}).items()),
        "",
        f"Fire times due: **{found.get('fire_times_due', 0)}** (and "
        f"{found.get('fire_times_in_transition', 0)} during an edit's propagation, held "
        f"to the same rules when they ran); flow runs: {found.get('runs', 0)}.",
        "",
        "| outcome | count |",
        "| --- | --- |",
        *(f"| {kind} | {count} |" for kind, count in found.get("outcomes", {}).items()),
        "",
        "| call-job answers | count |",
        "| --- | --- |",
        *(f"| {status} | {count} |" for status, count in found.get("calls", {}).items()),
        "",
        f"**Violations of the invariant: {len(violations)}**"
        + (" (target: none)." if violations else "."),
        "",
    ]
    if violations:
        lines += ["| violation | row | fire time | detail |", "| --- | --- | --- | --- |"]
        for item in violations[:50]:
            detail = str(item.get("detail", "")).replace("|", "\\|")[:160]
            lines.append(
                f"| {item['kind']} | {item.get('row_id') or '—'} | "
                f"{item.get('fire_time') or '—'} | {detail} |"
            )
        if len(violations) > 50:
            lines.append(f"| … {len(violations) - 50} more in the JSON | | | |")
        lines.append("")
    return [*lines, END]


def write_section(path: Path, report: Path = REPORT) -> None:
    """Replace the section in ``report`` (or append it)."""
    text = report.read_text() if report.exists() else "# Reliability\n"
    new = "\n".join(section(path))
    if BEGIN in text and END in text:
        before, _, rest = text.partition(BEGIN)
        _, _, after = rest.partition(END)
        text = before + new + after
    else:
        text = text.rstrip() + "\n\n" + new + "\n"
    report.write_text(text)
