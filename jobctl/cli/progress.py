"""Progress of long commands: a rich bar on a terminal, a plain line every few seconds
elsewhere (logs, CI), nothing with ``--quiet``.

The work reports how far it is through a callback (``update(done, total)``) with what it
knows anyway: showing progress costs no query and no API call. Output goes to stderr, so
that a command's result on stdout stays clean.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

LOG_INTERVAL_S = 5.0

QUIET_OPTION = click.option(
    "--quiet",
    "-q",
    is_flag=True,
    envvar="JOBCTL_QUIET",
    show_envvar=True,
    help="No progress display (a bar on a terminal, a line every few seconds otherwise).",
)


class Update(Protocol):
    def __call__(self, done: int, total: int | None = None) -> None: ...


def _ignore(done: int, total: int | None = None) -> None:
    pass


@contextmanager
def progress(
    what: str,
    *,
    quiet: bool,
    unit: str = "",
    stream: TextIO | None = None,
    interval_s: float = LOG_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Update]:
    """Yield ``update(done, total)`` for the work to call as it goes; ``total`` None
    while unknown. A bar when ``stream`` (stderr) is a terminal, else plain lines."""
    if quiet:
        yield _ignore
        return
    out = stream or sys.stderr
    if out.isatty():
        with _bar(what, out, unit) as update:
            yield update
        return
    lines = PlainLines(what, out, unit=unit, interval_s=interval_s, clock=clock)
    lines.start()
    try:
        yield lines.update
    finally:
        lines.stop()


class _Rate(ProgressColumn):
    """Items a second: rich's speed column speaks bytes."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("", style="progress.data.speed")
        return Text(f"{speed:,.1f} {self.unit}/s".replace(" /s", "/s"), style="progress.data.speed")


@contextmanager
def _bar(what: str, out: TextIO, unit: str) -> Iterator[Update]:
    columns = (
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _Rate(unit),
        TimeElapsedColumn(),
        TextColumn("elapsed,"),
        TimeRemainingColumn(),
        TextColumn("left"),
    )
    with Progress(*columns, console=Console(file=out), refresh_per_second=4) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int | None = None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


class PlainLines:
    """One line every ``interval_s`` (also while the work is silent), and one at the end:
    ``sync: 1,200/10,000 (12%), 40.0/s, 3m40s left``."""

    def __init__(
        self,
        what: str,
        out: TextIO,
        *,
        unit: str = "",
        interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.out = out
        self.unit = unit
        self.interval_s = interval_s
        self.clock = clock
        self.started = clock()
        self.last_line = self.started
        self.done = 0
        self.total: int | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="progress-lines", daemon=True)

    def start(self) -> None:
        self._ticker.start()

    def stop(self) -> None:
        """Stop the lines; a last one says how it ended, if the work was long enough to
        have shown any (a quick command prints nothing)."""
        self._stopped.set()
        self._ticker.join()
        with self._lock:
            if self.last_line > self.started:
                self._write(final=True)

    def update(self, done: int, total: int | None = None) -> None:
        with self._lock:
            self.done, self.total = done, total
            finished = total is not None and done >= total  # the last line says it
            if not finished and self.clock() - self.last_line >= self.interval_s:
                self._write()

    def _tick(self) -> None:
        while not self._stopped.wait(self.interval_s / 2):
            with self._lock:
                if self.clock() - self.last_line >= self.interval_s:
                    self._write()

    def _write(self, final: bool = False) -> None:
        self.last_line = self.clock()
        self.out.write(self.line(final) + "\n")
        self.out.flush()

    def line(self, final: bool = False) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        if self.done == 0 and self.total is None:  # nothing counted yet
            return f"{self.what}: {_duration(elapsed)} elapsed"
        unit = f" {self.unit}" if self.unit else ""
        count = f"{self.done:,}" if self.total is None else f"{self.done:,}/{self.total:,}"
        parts = [f"{self.what}: {count}{unit}"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f}%)"
        rate = self.done / elapsed
        parts.append(f"{rate:,.1f}/s")
        if final:
            parts.append(f"done in {_duration(elapsed)}")
        elif self.total is not None and rate > 0:
            parts.append(f"{_duration((self.total - self.done) / rate)} left")
        else:
            parts.append(f"{_duration(elapsed)} elapsed")
        return ", ".join(parts)


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
