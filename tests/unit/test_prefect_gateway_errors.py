"""The boundary's errors: what a refused or unreachable Prefect becomes in jobctl's terms,
whatever the call (the client stands in for Prefect's, raising what it raises)."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import httpx
import pytest
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from pydantic import BaseModel, ValidationError

from deployments.plan import Queue
from jobctl import errors
from jobctl.prefect.gateway.client import ClientGateway

QUEUE = Queue(id=uuid4(), name="priority-1", priority=1)


class _Raising:
    """Every call of Prefect's client raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            raise self.error

        return call


def _gateway(error: Exception) -> ClientGateway:
    return ClientGateway(_Raising(error))  # type: ignore[arg-type]


def _status_error(status: int, body: str) -> PrefectHTTPStatusError:
    request = httpx.Request("POST", "http://prefect/api/work_queues/")
    response = httpx.Response(status, text=body, request=request)
    return PrefectHTTPStatusError.from_httpx_error(
        httpx.HTTPStatusError("refused", request=request, response=response)
    )


def _validation_error() -> ValidationError:
    class Limit(BaseModel):
        value: int

    try:
        Limit(value="many")  # type: ignore[arg-type]
    except ValidationError as exc:
        return exc
    raise AssertionError("pydantic accepted a bad value")


def test_a_write_prefect_refuses_is_prefect_refused_with_its_status_and_detail() -> None:
    gateway = _gateway(_status_error(422, '{"detail": "bad priority"}'))

    with pytest.raises(errors.PrefectRefused) as caught:
        asyncio.run(gateway.set_queue_priority(QUEUE, 2))

    assert str(caught.value) == '422: {"detail": "bad priority"}'


def test_a_write_prefects_client_refuses_is_prefect_refused_too() -> None:
    gateway = _gateway(_validation_error())

    with pytest.raises(errors.PrefectRefused, match=r"^refused by the Prefect client: "):
        asyncio.run(gateway.set_paused(uuid4(), True))


def test_an_unreachable_prefect_is_prefect_unavailable_on_reads_and_writes() -> None:
    request = httpx.Request("GET", "http://prefect/api/work_queues/filter")
    gateway = _gateway(httpx.ConnectError("connection refused", request=request))

    for call in (gateway.read_queues("pool"), gateway.set_queue_priority(QUEUE, 2)):
        with pytest.raises(errors.PrefectUnavailable, match="cannot be reached: connection"):
            asyncio.run(call)


def test_a_read_prefect_answers_with_an_error_keeps_prefects_error() -> None:
    gateway = _gateway(_status_error(500, "server error"))

    with pytest.raises(PrefectHTTPStatusError):
        asyncio.run(gateway.read_queues("pool"))


def test_a_missing_deployment_is_an_answer_not_an_error() -> None:
    gateway = _gateway(ObjectNotFound(http_exc=_status_error(404, "not found")))

    assert asyncio.run(gateway.find_deployment("job/schedule-x")) is None
    assert asyncio.run(gateway.run_deployment("job/manual", {})) is None
    asyncio.run(gateway.delete_deployment(uuid4()))  # gone already: nothing to do
