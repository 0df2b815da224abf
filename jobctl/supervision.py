"""How jobctl's long-lived loops outlast their errors: wait longer after each failure."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass


@dataclass
class Backoff:
    """Delays that double from ``first_s`` up to ``max_s`` while failures go on."""

    first_s: float
    max_s: float
    failures: int = 0

    def next_delay_s(self) -> float:
        self.failures += 1
        return min(self.first_s * 2.0 ** (self.failures - 1), self.max_s)

    def reset(self) -> None:
        self.failures = 0


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
