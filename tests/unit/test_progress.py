"""Progress of long commands: a bar on a terminal, plain lines elsewhere, none when quiet."""

from __future__ import annotations

import io

from jobctl.cli import progress
from tests.fixtures.processes import wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def plain(clock: FakeClock, out: io.StringIO, **kwargs: object) -> progress.PlainLines:
    return progress.PlainLines("sync", out, interval_s=5, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_plain_lines_wait_for_the_interval_then_say_count_rate_and_time_left():
    clock, out = FakeClock(), io.StringIO()
    lines = plain(clock, out)

    lines.update(0, 10_000)
    clock.now += 4
    lines.update(100, 10_000)
    assert out.getvalue() == ""
    clock.now += 1
    lines.update(250, 10_000)

    assert out.getvalue() == "sync: 250/10,000 (2%), 50.0/s, 3m15s left\n"


def test_plain_lines_without_a_total_count_and_say_the_elapsed_time():
    clock, out = FakeClock(), io.StringIO()
    lines = plain(clock, out, unit="attempts")

    clock.now += 6
    lines.update(1_200)

    assert out.getvalue() == "sync: 1,200 attempts, 200.0/s, 6s elapsed\n"


def test_plain_lines_of_work_that_counts_nothing_say_only_the_elapsed_time():
    clock = FakeClock()
    lines = plain(clock, io.StringIO())

    clock.now += 75

    assert lines.line() == "sync: 1m15s elapsed"


def test_plain_lines_end_with_a_summary_only_after_long_work():
    clock, quick, long = FakeClock(), io.StringIO(), io.StringIO()
    short_work = plain(clock, quick)
    short_work.start()
    short_work.update(3, 3)
    short_work.stop()

    long_work = plain(clock, long)
    long_work.start()
    clock.now += 10
    long_work.update(500, 1_000)
    clock.now += 10
    long_work.update(1_000, 1_000)
    long_work.stop()

    assert quick.getvalue() == ""
    assert long.getvalue().splitlines() == [
        "sync: 500/1,000 (50%), 50.0/s, 10s left",
        "sync: 1,000/1,000 (100%), 50.0/s, done in 20s",
    ]


def test_plain_lines_keep_coming_while_the_work_is_silent():
    out = io.StringIO()

    with progress.progress("purge", quiet=False, stream=out, interval_s=0.05):
        wait_for(lambda: out.getvalue().count("\n") >= 2, timeout_s=10, what="two lines")

    assert all(" elapsed" in line or "done" in line for line in out.getvalue().splitlines())


def test_quiet_prints_nothing():
    out, terminal = io.StringIO(), Terminal()

    for stream in (out, terminal):
        with progress.progress("sync", quiet=True, stream=stream, interval_s=0) as update:
            update(5, 10)
            update(10, 10)

    assert out.getvalue() == terminal.getvalue() == ""


def test_a_terminal_gets_a_bar_with_the_count():
    terminal = Terminal()

    with progress.progress("sync", quiet=False, stream=terminal, unit="changes") as update:
        update(0, 40)
        update(40, 40)

    shown = terminal.getvalue()
    assert "sync" in shown
    assert "40/40" in shown
    assert "100%" in shown


def test_durations_read_like_a_clock():
    assert [progress._duration(s) for s in (0.4, 59, 61, 3599, 3600, 7322)] == [
        "0s",
        "59s",
        "1m01s",
        "59m59s",
        "1h00m",
        "2h02m",
    ]
