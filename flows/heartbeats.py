"""Prefect's flow-run heartbeats without the second they add to every run.

Prefect 3.9's heartbeat thread sleeps in whole seconds (``time.sleep(1)``), and the sync
flow engine joins it when the body returns, inside the run's timeout: every run with
heartbeats (ours send them, for the zombie automation) ended up to a second after its
job, and a 1 s timeout failed a job of milliseconds. ``install`` puts in the same loop,
waiting on its stop event instead; the engine looks ``_send_heartbeats`` up at each run.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

from prefect import flow_engine


def install() -> None:
    flow_engine._send_heartbeats = _send_heartbeats


@contextlib.contextmanager
def _send_heartbeats(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
    heartbeat_seconds = engine.heartbeat_seconds
    if heartbeat_seconds is None:
        yield
        return
    interval_s = max(heartbeat_seconds, flow_engine.MINIMUM_HEARTBEAT_INTERVAL)
    resource, related = engine._build_heartbeat_event_template()
    stop = threading.Event()

    def heartbeat_loop() -> None:
        while not stop.is_set():
            state = engine.flow_run.state if engine.flow_run else None
            if state is not None and state.is_final():
                return
            try:
                engine._emit_flow_run_heartbeat(resource, related)
            except Exception:
                engine.logger.debug("Failed to emit heartbeat", exc_info=True)
            stop.wait(interval_s)

    # The caller's context: the thread sees the run's settings (its PREFECT_API_URL).
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(heartbeat_loop,), daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        if join_on_exit:
            thread.join(timeout=2)
