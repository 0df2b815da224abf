"""The example jobs: the original's ``processData``, an HTTP caller, and demo helpers."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

import httpx

from jobctl.registry import job

logger = logging.getLogger("jobctl.jobs")

JsonValue = Any


@job(name="processData")
def process_data(param: list[str] | None, user: str) -> dict[str, Any]:
    """Log the parameters and summarise them (the original system's example job)."""
    items = list(param or [])
    logger.info("processData for %s with %d item(s): %s", user, len(items), items)
    digest = hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()
    return {"processed": len(items), "items": items, "sha256": digest}


@job(name="httpCall")
def http_call(param: dict[str, Any], user: str) -> dict[str, Any]:
    """Call a URL: ``{"url", "method"="POST", "json", "headers", "timeout_s"=30}``; non-2xx fails.

    The run's own timeout (the row's ``timeout``) interrupts a call that takes longer.
    """
    url = param["url"]
    method = str(param.get("method", "POST")).upper()
    headers = {str(k): str(v) for k, v in (param.get("headers") or {}).items()}
    timeout_s = float(param.get("timeout_s", 30))
    logger.info("httpCall %s %s for %s", method, url, user)
    response = httpx.request(
        method, url, json=param.get("json"), headers=headers, timeout=timeout_s
    )
    response.raise_for_status()
    try:
        body: JsonValue = response.json()
    except ValueError:
        body = response.text[:10_000]
    return {"status": response.status_code, "body": body}


@job
def sleep(param: float, user: str) -> float:
    """Sleep ``param`` seconds (demos and tests of timeouts and overlap)."""
    time.sleep(float(param))
    return float(param)


class DemoFailure(RuntimeError):
    pass


@job
def fail(param: str | None, user: str) -> None:
    """Always raise, with ``param`` as the message (demos and tests of retries)."""
    raise DemoFailure(param or "failed on purpose")


@job
def leak(param: float, user: str) -> None:
    """Hold on to ``param`` MiB more every second and never return: a runaway job, for
    demos and tests of a timeout bounding it."""
    held: list[bytearray] = []
    while True:
        held.append(bytearray(int(param * 2**20)))  # bytearray pages are really written
        time.sleep(1)
