"""Parsing of command-line values: durations, instants, JSON params."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click
import pytest
from click.testing import CliRunner

from jobctl.cli import parsing

# -- Duration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("15m", timedelta(minutes=15)),
        ("90s", timedelta(seconds=90)),
        ("2w", timedelta(weeks=2)),
        ("0s", timedelta(0)),
        (" 5m ", timedelta(minutes=5)),
    ],
)
def test_duration_parses_an_amount_and_a_unit(text: str, expected: timedelta):
    assert parsing.DURATION.convert(text, None, None) == expected


@pytest.mark.parametrize("text", ["30", "d", "-1d", "", "1.5h", "10x", "1dd", "d1", "1 d 2"])
def test_duration_rejects_text_that_is_not_an_amount_and_a_unit(text: str):
    with pytest.raises(click.BadParameter, match="not a duration"):
        parsing.DURATION.convert(text, None, None)


def test_duration_passes_a_timedelta_through():
    assert parsing.DURATION.convert(timedelta(hours=3), None, None) == timedelta(hours=3)


# -- Instant -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T12:30:00", datetime(2024, 3, 1, 12, 30, tzinfo=UTC)),
        ("2024-03-01 12:30", datetime(2024, 3, 1, 12, 30, tzinfo=UTC)),
        ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
    ],
)
def test_instant_without_offset_is_read_as_utc(text: str, expected: datetime):
    moment = parsing.INSTANT.convert(text, None, None)

    assert moment == expected
    assert moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T12:30:00+02:00", datetime(2024, 3, 1, 10, 30, tzinfo=UTC)),
        ("2024-03-01T12:30:00-05:00", datetime(2024, 3, 1, 17, 30, tzinfo=UTC)),
        ("2024-03-01T12:30:00Z", datetime(2024, 3, 1, 12, 30, tzinfo=UTC)),
        ("2024-03-01T12:30:00+00:00", datetime(2024, 3, 1, 12, 30, tzinfo=UTC)),
    ],
)
def test_instant_with_offset_is_the_same_instant_in_utc(text: str, expected: datetime):
    moment = parsing.INSTANT.convert(text, None, None)

    assert moment.tzinfo is not None
    assert moment == expected


@pytest.mark.parametrize(
    ("text", "ago"),
    [("24h", timedelta(hours=24)), ("15m", timedelta(minutes=15)), ("2w", timedelta(weeks=2))],
)
def test_instant_as_a_duration_is_that_long_before_now(text: str, ago: timedelta):
    before = datetime.now(UTC)
    moment = parsing.INSTANT.convert(text, None, None)
    after = datetime.now(UTC)

    assert moment.tzinfo is not None
    assert before - ago <= moment <= after - ago


@pytest.mark.parametrize("text", ["yesterday", "-1d", "2024-13-01", "12:00 tomorrow", ""])
def test_instant_rejects_text_that_is_neither_a_time_nor_a_duration(text: str):
    with pytest.raises(click.BadParameter, match="neither an ISO-8601 time nor a duration"):
        parsing.INSTANT.convert(text, None, None)


def test_instant_passes_a_datetime_through():
    moment = datetime(2024, 3, 1, tzinfo=UTC)

    assert parsing.INSTANT.convert(moment, None, None) is moment


# -- JsonParam -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"items": [1, 2], "name": "x"}', {"items": [1, 2], "name": "x"}),
        ('["alpha", "beta"]', ["alpha", "beta"]),
        ("42", 42),
        ("1.5", 1.5),
        ('"text"', "text"),
        ("true", True),
        ("null", None),
    ],
)
def test_json_param_parses_valid_json(text: str, expected: Any):
    assert parsing.JSON.convert(text, None, None) == expected


@pytest.mark.parametrize("text", ["{a: 1}", "'single'", "", "[1,", "undefined", '{"a": 1} x'])
def test_json_param_rejects_invalid_json(text: str):
    with pytest.raises(click.BadParameter, match="not valid JSON"):
        parsing.JSON.convert(text, None, None)


def test_json_param_passes_a_parsed_value_through():
    value = {"already": "parsed"}

    assert parsing.JSON.convert(value, None, None) is value


def test_bad_values_are_usage_errors_on_the_command_line():
    @click.command()
    @click.option("--param", type=parsing.JSON)
    @click.option("--older-than", type=parsing.DURATION)
    def command(param: Any, older_than: timedelta | None) -> None:
        click.echo(f"{param!r} {older_than!r}")

    runner = CliRunner()

    good = runner.invoke(command, ["--param", "[1]", "--older-than", "2h"])
    assert good.exit_code == 0, good.output
    assert good.output.strip() == "[1] datetime.timedelta(seconds=7200)"

    bad_json = runner.invoke(command, ["--param", "{a: 1}"])
    assert bad_json.exit_code == 2
    assert "not valid JSON" in bad_json.output

    bad_duration = runner.invoke(command, ["--older-than", "30"])
    assert bad_duration.exit_code == 2
    assert "not a duration" in bad_duration.output


def test_every_schedule_option_help_describes_what_is_enforced():
    from jobctl.cli.schedule import schedule

    for command in ("add", "update"):
        shown = CliRunner().invoke(schedule, [command, "--help"], terminal_width=200)

        assert shown.exit_code == 0, shown.output
        assert "not enforced" not in shown.output
        assert "--misfire-grace" in shown.output and "skipped" in shown.output


def test_an_invalid_setting_is_one_line_naming_the_variable(monkeypatch):
    from jobctl.cli import cli

    monkeypatch.setenv("JOBCTL_WATCH_INTERVAL_S", "soon")
    result = CliRunner().invoke(cli, ["history", "--limit", "1"])

    assert result.exit_code == 1
    assert result.output.startswith("error: invalid setting JOBCTL_WATCH_INTERVAL_S: ")
    assert "param" not in result.output
