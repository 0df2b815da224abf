"""A small client of ``POST /v1/job/call-job`` running beside the soak, in a thread.

It only sends HTTP requests (no child process: those are started from the main thread).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

CALL_TIMEOUT_S = 180.0
# The jobs it calls: one that succeeds (200) and one that fails (424).
CALLS = (("processData", ["chaos-call"]), ("fail", "a call that fails"))


@dataclass(frozen=True)
class CallRecord:
    started: datetime
    ended: datetime
    job: str
    status: int | None
    flow_run_id: str | None
    detail: str


@dataclass
class CallClient:
    api_url: str
    token: str
    seed: int
    min_gap_s: float = 6.0
    max_gap_s: float = 15.0
    records: list[CallRecord] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="call-job client", daemon=True)
        self._thread.start()

    def stop(self, *, wait: bool = True) -> None:
        """No call after this; with ``wait``, the one in flight is waited for."""
        self._stop.set()
        if wait and self._thread is not None:
            self._thread.join(timeout=CALL_TIMEOUT_S + 10)

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        rng = random.Random(self.seed + 2)
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(timeout=CALL_TIMEOUT_S, headers=headers) as http:
            while not self._stop.wait(rng.uniform(self.min_gap_s, self.max_gap_s)):
                job, param = rng.choice(CALLS)
                self.records.append(self.call(http, job, param))

    def call(self, http: httpx.Client, job: str, param: object) -> CallRecord:
        started = datetime.now(UTC)
        status: int | None = None
        run_id: str | None = None
        detail = ""
        try:
            response = http.post(
                f"{self.api_url}/v1/job/call-job", json={"methodName": job, "param": param}
            )
            status = response.status_code
            detail = response.text[:300]
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and body.get("flowRunId"):
                run_id = str(body["flowRunId"])
        except httpx.HTTPError as exc:
            detail = f"{type(exc).__name__}: {exc}"
        return CallRecord(started, datetime.now(UTC), job, status, run_id, detail)
