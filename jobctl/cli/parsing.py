"""Parsing of command-line values: JSON params, durations, instants."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


class JsonParam(click.ParamType):  # type: ignore[type-arg]
    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError as exc:
            self.fail(f"not valid JSON ({exc})", param, ctx)


class Duration(click.ParamType):  # type: ignore[type-arg]
    """``30d``, ``12h``, ``15m``, ``90s`` or ``2w``."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = _DURATION.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a duration such as 30d, 12h, 15m or 90s", param, ctx)
        amount, unit = match.groups()
        try:
            return timedelta(seconds=int(amount) * _UNIT_SECONDS[unit])
        except (OverflowError, ValueError):  # beyond timedelta, or over 4300 digits
            self.fail(f"{value!s:.50} is longer than any duration this can hold", param, ctx)


class Instant(click.ParamType):  # type: ignore[type-arg]
    """An ISO-8601 instant (UTC when no offset is given) or a duration ago (``24h``)."""

    name = "instant"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value)
        if _DURATION.match(text):
            try:
                return datetime.now(UTC) - Duration().convert(text, param, ctx)
            except OverflowError:
                self.fail(f"{text:.50} ago is before the year 1", param, ctx)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{text!r} is neither an ISO-8601 time nor a duration like 24h", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


JSON = JsonParam()
DURATION = Duration()
INSTANT = Instant()
