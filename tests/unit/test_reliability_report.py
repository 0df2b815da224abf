"""docs/RELIABILITY.md says what each generated-input test tried, read from a real run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench import reliability_report

GENERATED_TESTS = """
from hypothesis import given, settings, strategies as st

@settings(max_examples=37, database=None)
@given(st.integers())
def test_property(n):
    assert n == n

def test_fuzzing(record_property):
    record_property("cases", 12)

def test_plain():
    pass
"""


def test_the_report_counts_the_cases_each_generated_test_tried(tmp_path: Path) -> None:
    (tmp_path / "test_generated.py").write_text(GENERATED_TESTS)
    xml_path = tmp_path / "run.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-c", "/dev/null", "--rootdir", str(tmp_path),
         "-p", "no:cacheprovider", "-n", "0", f"--junitxml={xml_path}", "-q", str(tmp_path)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip

    cases = {case.function: case for case in reliability_report.read_cases(xml_path)}
    lines = "\n".join(reliability_report._tests_section(xml_path, list(cases.values())))

    assert cases["test_property"].cases == 37
    assert cases["test_fuzzing"].cases == 12
    assert cases["test_plain"].cases is None
    assert "37 generated cases" in lines and "12 generated cases" in lines


def test_every_generated_input_test_is_in_the_report(pytestconfig) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", "-m", "reliability",
         "tests/unit/test_properties.py", "tests/integration/test_api.py"],
        cwd=pytestconfig.rootpath, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip

    assert "test_every_operation_conforms_to_its_openapi_schema" in listed
    assert "test_planner_applying_its_plan_then_planning_again_gives_an_empty_plan" in listed
