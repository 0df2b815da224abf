"""`jobctl up` stops when its standard output closes, whichever line meets it closed."""

from __future__ import annotations

import io
import sys

import pytest

from jobctl.cli import stack


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_once_a_line_met_a_closed_stdout_every_later_line_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A line before the status loop (`in another terminal: ...`) may be the first to meet
    the closed pipe: the status loop's lines, written to /dev/null after it, must still
    report the close, or `up` never stops (CI: `test_up[sqlite-stdout closed]`)."""
    monkeypatch.setattr(stack._Stdout, "closed", False)
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())

    assert stack.say("in another terminal: export PREFECT_API_URL=...") is False
    assert stack.say("[status line]") is False
    assert stack.say("stopping...") is False


def test_lines_to_an_open_stdout_are_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(stack._Stdout, "closed", False)

    assert stack.say("status") is True
    assert capsys.readouterr().out == "status\n"
