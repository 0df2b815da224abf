"""One table of the schedule fields drives the repository, validation, the API and the CLI."""

from __future__ import annotations

import dataclasses

from jobctl import fields
from jobctl.api import schemas
from jobctl.cli.schedule import add
from jobctl.models import JobSchedule
from jobctl.records import ScheduleSpec


def test_the_table_names_every_spec_field_and_an_existing_column() -> None:
    assert [f.name for f in fields.SCHEDULE_FIELDS] == [
        f.name for f in dataclasses.fields(ScheduleSpec)
    ]
    columns = set(JobSchedule.__table__.columns.keys())
    assert {f.column for f in fields.SCHEDULE_FIELDS} <= columns


def test_the_api_bodies_take_their_names_and_limits_from_the_table() -> None:
    body = schemas.ScheduleFields.model_json_schema()["properties"]
    out = schemas.ScheduleOut.model_json_schema()["properties"]

    assert set(body) == {f.column for f in fields.SCHEDULE_FIELDS}
    assert {f.column for f in fields.SCHEDULE_FIELDS} <= set(out)
    for field in fields.SCHEDULE_FIELDS:
        shown = body[field.column]
        variants = shown.get("anyOf", [shown])
        if field.maximum is not None:
            assert any(v.get("maximum") == field.maximum for v in variants), field.column
        if field.max_length is not None:
            assert any(v.get("maxLength") == field.max_length for v in variants), field.column
        if field.choices:
            assert any(tuple(v.get("enum", ())) == field.choices for v in variants)


def test_the_cli_has_one_option_per_field_but_is_active() -> None:
    options = {opt for param in add.params for opt in getattr(param, "opts", [])}

    for field in fields.SCHEDULE_FIELDS:
        assert (field.option in options) is (field.name != "is_active"), field.option
