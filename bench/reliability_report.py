"""docs/RELIABILITY.md, written from the last runs: the reliability tests and the load runs.

    .venv/bin/python -m bench.reliability_report --run   # run the tests, then write the report
    .venv/bin/python -m bench.reliability_report         # write it from the last recorded runs

The tests are those marked ``reliability`` (faults, properties, API fuzzing, bad input);
``--run`` records their outcome as JUnit XML in ``bench/results/reliability-<UTC time>.xml``,
with the cases each generated test tried: hypothesis' statistics of a property test, the
``cases`` property a fuzzing test records. One process runs them (``-n 0``): under
pytest-xdist hypothesis writes no statistics into the XML. The
load runs are ``python -m bench.load_bench``: each part (sync, history) is read from the
newest ``bench/results/load-*.json`` that ran it. What each test did and checked is its
docstring; the report quotes it.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import inspect
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REPORT = ROOT / "docs" / "RELIABILITY.md"
PARAMS = re.compile(r"\[(?P<params>.*)\]$")
# In hypothesis' statistics: "- 100 passing, 0 failing, and 3 invalid test cases".
HYPOTHESIS_CASES = re.compile(r"- (\d+) passing, (\d+) failing, and \d+ invalid")
HYPOTHESIS_STATISTICS = "hypothesis-statistics-"


@dataclass(frozen=True)
class Case:
    module: str
    function: str
    params: str
    outcome: str  # passed | failed | skipped
    seconds: float
    detail: str
    cases: int | None = None  # generated cases tried (property and fuzzing tests)

    @property
    def symbol(self) -> str:
        return {"passed": "✅ passed", "failed": "❌ failed"}.get(self.outcome, "⚠️ skipped")


def run_tests(stamp: str) -> Path:
    xml_path = RESULTS / f"reliability-{stamp}.xml"
    command = [sys.executable, "-m", "pytest", "-m", "reliability", "-p", "no:cacheprovider",
               "-n", "0", f"--junitxml={xml_path}", "-q"]  # fmt: skip
    subprocess.run(command, cwd=ROOT, check=False)
    return xml_path


def read_cases(xml_path: Path) -> list[Case]:
    root = ET.parse(xml_path).getroot()
    generated = _hypothesis_cases(root)
    cases: list[Case] = []
    for testcase in root.iter("testcase"):
        name = testcase.get("name", "")
        classname = testcase.get("classname", "")
        match = PARAMS.search(name)
        problem = testcase.find("failure")
        if problem is None:
            problem = testcase.find("error")
        skipped = testcase.find("skipped")
        outcome = (
            "failed" if problem is not None else "skipped" if skipped is not None else "passed"
        )
        detail = problem if problem is not None else skipped
        recorded = {prop.get("name"): prop.get("value", "") for prop in testcase.iter("property")}
        cases.append(
            Case(
                module=classname,
                function=PARAMS.sub("", name),
                params=match["params"] if match else "",
                outcome=outcome,
                seconds=float(testcase.get("time", 0)),
                detail=(detail.get("message", "") if detail is not None else "")[:300],
                cases=(
                    int(recorded["cases"])
                    if "cases" in recorded
                    else generated.get((classname, name))
                ),
            )
        )
    return cases


def _hypothesis_cases(root: ET.Element) -> dict[tuple[str, str], int]:
    """Cases each property test tried, from the statistics hypothesis writes into the XML
    (one suite property per test, named by its node id), by (classname, name)."""
    found: dict[tuple[str, str], int] = {}
    for prop in root.iter("property"):
        key = prop.get("name", "")
        if not key.startswith(HYPOTHESIS_STATISTICS):
            continue
        path, _, name = key.removeprefix(HYPOTHESIS_STATISTICS).partition("::")
        text = base64.b64decode(prop.get("value", "")).decode()
        counts = HYPOTHESIS_CASES.findall(text)
        found[(path.removesuffix(".py").replace("/", "."), name)] = sum(
            int(passing) + int(failing) for passing, failing in counts
        )
    return found


def _docstring(module: str, function: str | None = None) -> str:
    try:
        target: Any = importlib.import_module(module)
        if function is not None:
            target = getattr(target, function)
    except (ImportError, AttributeError):
        return ""
    return inspect.cleandoc(target.__doc__ or "")


def _humane(function: str) -> str:
    return function.removeprefix("test_").replace("_", " ").capitalize()


def _what_was_done(doc: str) -> list[str]:
    """A test's docstring "Done: ... Checked: ..." as two sub-items."""
    text = " ".join(doc.split())
    if not text:
        return []
    done, _, checked = text.partition("Checked:")
    items = [f"  - done: {done.removeprefix('Done:').strip()}"]
    return [*items, f"  - checked: {checked.strip()}"] if checked else items


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _tests_section(xml_path: Path, cases: list[Case]) -> list[str]:
    failed = sum(case.outcome == "failed" for case in cases)
    lines = [
        "## Faults, properties, API fuzzing and bad input",
        "",
        f"From `{_shown(xml_path)}`: {len(cases)} tests, "
        f"{len(cases) - failed} passed, {failed} failed, "
        f"{sum(case.seconds for case in cases):.0f} s in all. They also run in `make test`.",
        "",
    ]
    sys.path.insert(0, str(ROOT))
    for module in dict.fromkeys(case.module for case in cases):
        in_module = [case for case in cases if case.module == module]
        intro = _docstring(module).split("\n\n")[0].replace("\n", " ")
        lines += [f"### `{module}`", "", intro, ""]
        for function in dict.fromkeys(case.function for case in in_module):
            runs = [case for case in in_module if case.function == function]
            lines.append(f"- **{_humane(function)}**")
            lines += _what_was_done(_docstring(module, function))
            for case in runs:
                label = f"`[{case.params}]` " if case.params else ""
                note = f" — {case.detail}" if case.detail else ""
                tried = f", {case.cases} generated cases" if case.cases is not None else ""
                lines.append(f"  - {label}{case.symbol} in {case.seconds:.1f} s{tried}{note}")
        lines.append("")
    return lines


LOAD_PARTS = ("sync", "history")


def latest_load_runs() -> list[tuple[Path, dict[str, Any], list[dict[str, Any]]]]:
    """For each part of the load bench, the newest run that did it, and its checks.

    A run may do one part only (``--only sync``): each part is reported from its own run.
    """
    runs = sorted(RESULTS.glob("load-*.json"), reverse=True)
    found = []
    for part in LOAD_PARTS:
        for path in runs:
            data = json.loads(path.read_text())
            prefix = f"{part} load"
            checks = [c for c in data.get("checks", []) if c.get("name", "").startswith(prefix)]
            if checks:
                found.append((path, data, checks))
                break
    return found


def _load_section(runs: list[tuple[Path, dict[str, Any], list[dict[str, Any]]]]) -> list[str]:
    lines = ["## Load", ""]
    if not runs:
        return [*lines, "No load run recorded yet: `.venv/bin/python -m bench.load_bench`.", ""]
    lines += ["| check | done | checked | result | figures |", "| --- | --- | --- | --- | --- |"]
    sources = []
    for path, data, checks in runs:
        config = data.get("config", {})
        machine = data.get("machine", {})
        source = (
            f"- `{path.relative_to(ROOT)}`: {json.dumps(config, sort_keys=True)}; "
            f"machine `{json.dumps(machine, sort_keys=True)}`"
        )
        if source not in sources:
            sources.append(source)
        for check in checks:
            figures = ", ".join(f"{key} {value}" for key, value in check.get("figures", {}).items())
            result = "✅ pass" if check.get("result") == "pass" else "❌ fail"
            lines.append(
                f"| {check.get('name', '')} | {check.get('done', '')} | "
                f"{check.get('checked', '')} | {result} | {figures} |"
            )
    return [*lines, "", "From (`python -m bench.load_bench`):", "", *sources, ""]


def _latest(pattern: str) -> Path | None:
    found = sorted(RESULTS.glob(pattern))
    return found[-1] if found else None


def _chaos_section() -> list[str]:
    """The newest chaos soak (``python -m bench chaos``), as its own run writes it."""
    from bench.chaos import report as chaos_report  # the soak's modules: only when reported

    latest = _latest("chaos-*.json")
    if latest is None:
        return ["## Chaos soak", "", "No soak recorded yet: `python -m bench chaos`.", ""]
    return [*chaos_report.section(latest), ""]


def write_report(
    xml_path: Path, load_runs: list[tuple[Path, dict[str, Any], list[dict[str, Any]]]]
) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    lines = [
        "# Reliability",
        "",
        "What goes wrong in production, done on purpose to the real system: real processes,",
        "real signals, a real PostgreSQL and a real Prefect server. Generated by",
        "`python -m bench.reliability_report` from the last runs; do not edit by hand.",
        "",
        f"Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{commit}`.",
        "",
        *_tests_section(xml_path, read_cases(xml_path)),
        *_load_section(load_runs),
        *_chaos_section(),
    ]
    text = "\n".join(lines).rstrip() + "\n"
    REPORT.write_text(text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="store_true", help="run the reliability tests first")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.run:
        xml_path: Path | None = run_tests(f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
    else:
        xml_path = _latest("reliability-*.xml")
    if xml_path is None or not xml_path.exists():
        print("no reliability test run recorded: use --run", file=sys.stderr)
        return 2
    write_report(xml_path, latest_load_runs())
    print(f"wrote {REPORT.relative_to(ROOT)}")
    failed = [case for case in read_cases(xml_path) if case.outcome == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
