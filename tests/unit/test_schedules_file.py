"""Schedules as code without a database: parsing keeps lines and names bad entries; the plan
adds, updates (naming the changed columns), deletes only with prune, and leaves equal rows."""

from __future__ import annotations

import itertools
import textwrap
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from jobctl import schedules_file
from jobctl.errors import InvalidSchedulesFile
from jobctl.fields import SCHEDULE_FIELDS
from jobctl.records import InvalidJson, Schedule, ScheduleSpec
from jobctl.schedules_file import Action

KNOWN_JOBS = frozenset({"processData", "report"})
ID_A = "11111111-1111-1111-1111-111111111111"
ID_B = "22222222-2222-2222-2222-222222222222"
ID_C = "33333333-3333-3333-3333-333333333333"


def row(schedule_id: str, **overrides: Any) -> Schedule:
    values: dict[str, Any] = {
        "cron": "0 3 * * *",
        "job_name": "report",  # not registered: any param fits
        "param": ["a", {"k": 1}],
        "is_active": True,
        "description": "nightly",
        "priority": 2,
        "timeout_ms": 60_000,
        "max_retries": 1,
        "timezone": "Europe/Berlin",
        "retry_delay_ms": 1_000,
        "retry_backoff": "exponential",
        "overlap": "skip",
        "misfire_grace_ms": None,
    }
    return Schedule(id=schedule_id, **{**values, **overrides})


def parse(text: str) -> list[schedules_file.Entry]:
    return schedules_file.parse(textwrap.dedent(text), KNOWN_JOBS)


def problems(text: str) -> list[str]:
    with pytest.raises(InvalidSchedulesFile) as caught:
        parse(text)
    return caught.value.problems


def roundtrip(rows: list[Schedule]) -> list[schedules_file.Entry]:
    text, warnings = schedules_file.export(rows, KNOWN_JOBS)
    assert warnings == []
    return schedules_file.parse(text, KNOWN_JOBS)


def fixed_ids() -> Any:
    counter = itertools.count(1)
    return lambda: f"new-{next(counter)}"


# -- export and parse --------------------------------------------------------------------


def test_export_writes_every_column_by_its_original_name_and_the_id():
    text, _ = schedules_file.export([row(ID_A)], KNOWN_JOBS)
    (entry,) = yaml.safe_load(text)["schedules"]
    assert list(entry) == ["id", *(field.column for field in SCHEDULE_FIELDS)]
    assert entry["id"] == ID_A and entry["timeout"] == 60_000 and entry["isActive"] is True


def test_an_exported_file_parses_back_to_the_same_rows_and_plans_nothing():
    rows = [row(ID_A), row(ID_B, cron="@daily", param=None, description="two\nlines")]
    entries = roundtrip(rows)
    assert [entry.schedule_id for entry in entries] == [ID_A, ID_B]
    plan = schedules_file.plan(entries, rows, prune=True)
    assert [change.action for change in plan.changes] == [Action.UNCHANGED] * 2
    assert plan.writes_nothing


def test_entries_carry_the_line_where_they_start():
    entries = parse(
        """\
        # comment
        schedules:
        - id: 11111111-1111-1111-1111-111111111111
          cron: 0 3 * * *
          jobName: processData

        - cron: '@hourly'
          jobName: report
        """
    )
    assert [(entry.line, entry.schedule_id) for entry in entries] == [(3, ID_A), (7, None)]


def test_a_column_left_out_takes_its_default_and_cron_is_normalised():
    (entry,) = parse("schedules:\n- {cron: '0 0 3 * * *', jobName: report}\n")
    assert entry.spec == ScheduleSpec(cron="0 3 * * *", job_name="report")


def test_every_bad_entry_is_named_with_its_line_and_id():
    found = problems(
        """\
        schedules:
        - id: 11111111-1111-1111-1111-111111111111
          cron: 61 * * * *
          jobName: processData
        - cron: '@daily'
          jobName: report
        - cron: '@daily'
          jobName: nope
          priority: -1
        - cron: '@daily'
          jobname: report
        - 3
        - id: a/b
          cron: '@daily'
          jobName: report
        """
    )
    assert len(found) == 5, found
    assert found[0].startswith(f"line 2: entry 1 ({ID_A}): cron: ")
    assert found[1].startswith("line 7: entry 3: ")
    assert "jobName: 'nope' is not a registered job" in found[1]
    assert "priority: must be between 0" in found[1]
    assert found[2].startswith("line 10: entry 4: unknown column 'jobname' at line 11")
    assert found[3] == "line 12: entry 5: expected a mapping of column: value"
    assert found[4].startswith("line 13: entry 6 (a/b): id: contains '/'")


def test_a_missing_required_column_and_a_repeated_key_are_bad_entries():
    found = problems(
        """\
        schedules:
        - jobName: report
        - cron: '@daily'
          jobName: report
          cron: '@hourly'
        """
    )
    assert found == [
        "line 2: entry 1: cron: required",
        "line 3: entry 2: cron given twice (line 5)",
    ]


def test_an_id_given_twice_names_both_lines():
    found = problems(
        f"""\
        schedules:
        - {{id: {ID_A}, cron: '@daily', jobName: report}}
        - {{id: {ID_A}, cron: '@hourly', jobName: report}}
        """
    )
    assert found == [f"line 3: entry 2 ({ID_A}): id already used by the entry at line 2"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "the file is empty", id="empty"),
        pytest.param("schedules: [\n", "line 2: not valid YAML", id="syntax"),
        pytest.param("- cron: x\n", "line 1: expected a mapping with one key", id="top-list"),
        pytest.param("rows: []\n", "not keys rows", id="top-key"),
        pytest.param("schedules: 3\n", "line 1: 'schedules' must be a list", id="not-list"),
        pytest.param(
            "schedules:\n- {cron: '@daily', jobName: report, param: 2024-13-45}\n",
            "param: not a value",
            id="bad-timestamp",
        ),
        pytest.param(
            "schedules:\n- {cron: '@daily', jobName: report, param: 2024-01-05}\n",
            "param: is not JSON-serialisable",
            id="date-is-not-json",
        ),
    ],
)
def test_a_malformed_file_is_refused_with_a_line(text: str, expected: str):
    (problem,) = problems(text)
    assert expected in problem


def test_an_explicitly_empty_list_means_no_rows():
    assert parse("schedules: []\n") == []
    assert parse("schedules:\n") == []


def test_export_warns_about_an_invalid_row_and_keeps_it():
    rows = [row(ID_A, param=InvalidJson("{oops")), row(ID_B), row(ID_C, job_name="gone")]
    text, warnings = schedules_file.export(rows, KNOWN_JOBS)
    assert ID_A in text and "'{oops'" in text and ID_C in text
    assert warnings == [
        f"schedule {ID_A} is invalid (param: is not valid JSON: '{{oops'): "
        "apply refuses the file until it is fixed",
        f"schedule {ID_C} is invalid (jobName: 'gone' is not a registered job): "
        "apply refuses the file until it is fixed",
    ]


# -- plan --------------------------------------------------------------------------------


def entry_for(schedule: Schedule, line: int = 2, **changes: Any) -> schedules_file.Entry:
    return schedules_file.Entry(line, schedule.id, schedule.spec().replace(**changes))


def test_a_changed_row_is_an_update_naming_only_its_changed_columns():
    current = [row(ID_A)]
    entries = [entry_for(current[0], cron="0 4 * * *", param=["a", {"k": 2}], timeout_ms=None)]
    (change,) = schedules_file.plan(entries, current).changes
    assert change.action is Action.UPDATE
    assert change.columns == ("cron", "param", "timeout")
    assert change.describe() == f"update {ID_A} (line 2): cron, param, timeout"
    plan = schedules_file.plan(entries, current)
    assert plan.updates() == [
        (ID_A, {"cron": "0 4 * * *", "param": ["a", {"k": 2}], "timeout_ms": None})
    ]


@pytest.mark.parametrize(
    ("stored", "wanted"),
    [
        pytest.param({"param": {"a": 1}}, {"param": {"a": True}}, id="one-is-not-true"),
        pytest.param({"param": [1]}, {"param": [1.5]}, id="number"),
        pytest.param({"priority": 0}, {"priority": None}, id="zero-is-not-null"),
        pytest.param({"is_active": True}, {"is_active": False}, id="active"),
        pytest.param({"param": InvalidJson("{")}, {"param": "{"}, id="stored-not-json"),
    ],
)
def test_values_that_compare_equal_in_python_but_differ_in_the_table_are_updates(
    stored: dict[str, Any], wanted: dict[str, Any]
):
    current = [row(ID_A, **stored)]
    (change,) = schedules_file.plan([entry_for(current[0], **wanted)], current).changes
    assert change.action is Action.UPDATE


def test_json_key_order_number_form_and_an_equivalent_stored_cron_are_unchanged():
    # PostgreSQL's jsonb gives 1e16 back as 10000000000000000, and keeps 1.0 as 1.0.
    stored = {"b": 1, "a": [1.0, 10_000_000_000_000_000, True, None]}
    current = [row(ID_A, param=stored, cron="0 0 3 * * *")]
    wanted = {"a": [1, 1e16, True, None], "b": 1.0}
    entries = [entry_for(current[0], param=wanted, cron="0 3 * * *")]
    assert schedules_file.plan(entries, current).writes_nothing


def test_an_entry_without_an_id_is_added_under_a_new_id():
    entries = parse("schedules:\n- {cron: '@daily', jobName: report}\n")
    plan = schedules_file.plan(entries, [row(ID_A)], new_id=fixed_ids())
    (change,) = plan.changes
    assert (change.action, change.schedule_id, change.new_id) == (Action.ADD, "new-1", True)
    assert change.describe() == "add new-1 (line 2)"
    assert change.describe(dry_run=True) == "add a new row (line 2)"
    assert plan.adds() == [("new-1", entries[0].spec)]


def test_an_entry_whose_id_has_no_row_is_added_under_that_id():
    entries = parse(f"schedules:\n- {{id: {ID_C}, cron: '@daily', jobName: report}}\n")
    (change,) = schedules_file.plan(entries, []).changes
    assert (change.action, change.schedule_id, change.new_id) == (Action.ADD, ID_C, False)


def test_rows_absent_from_the_file_are_deleted_only_with_prune():
    current = [row(ID_A), row(ID_B), row(ID_C)]
    entries = [entry_for(current[1])]
    assert [c.action for c in schedules_file.plan(entries, current).changes] == [Action.UNCHANGED]
    pruned = schedules_file.plan(entries, current, prune=True)
    assert pruned.deletes() == [ID_A, ID_C]
    assert pruned.summary() == "0 add, 0 update, 2 delete, 1 unchanged"


def test_keep_active_state_leaves_is_active_of_existing_rows_but_not_of_new_ones():
    current = [row(ID_A, is_active=False)]
    entries = [
        entry_for(current[0], is_active=True, priority=7),
        schedules_file.Entry(
            5, None, ScheduleSpec(cron="@daily", job_name="report", is_active=False)
        ),
    ]
    plan = schedules_file.plan(entries, current, keep_active_state=True, new_id=fixed_ids())
    update, add = plan.changes
    assert update.columns == ("priority",)
    assert plan.updates() == [(ID_A, {"priority": 7})]
    assert add.spec is not None and add.spec.is_active is False
    without = schedules_file.plan(entries, current)
    assert without.changes[0].columns == ("isActive", "priority")


# -- round trip of any text and any JSON -------------------------------------------------

# Text a row can hold: PostgreSQL refuses NUL, and validation refuses it first.
TEXT = st.text(st.characters(exclude_characters="\x00"), max_size=40)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@given(description=TEXT, param=JSON_VALUES)
@settings(max_examples=300, deadline=None, database=None)
def test_any_text_and_any_json_export_and_parse_back_unchanged(description: str, param: Any):
    current = [row(ID_A, description=description, param=param)]
    text, _ = schedules_file.export(current, KNOWN_JOBS)
    (entry,) = schedules_file.parse(text, KNOWN_JOBS)
    assert entry.spec.description == description
    assert schedules_file.plan([entry], current).writes_nothing
