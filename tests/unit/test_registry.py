from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from jobctl import errors, registry
from jobs import examples

EXAMPLE_JOBS = {
    "processData": examples.process_data,
    "httpCall": examples.http_call,
    "sleep": examples.sleep,
    "fail": examples.fail,
    "leak": examples.leak,
}


@pytest.fixture
def jobs_registry() -> Iterator[dict[str, registry.Job]]:
    """The live registry, restored to its content after the test."""
    registry.load_jobs()
    saved = dict(registry._jobs)
    yield registry._jobs
    registry._jobs.clear()
    registry._jobs.update(saved)


@pytest.mark.parametrize(("name", "function"), EXAMPLE_JOBS.items())
def test_example_jobs_are_registered_under_their_names(name: str, function: Any):
    job = registry.get_job(name)

    assert job.name == name
    assert job.fn is function


def test_job_names_lists_the_example_jobs_sorted():
    names = registry.job_names()

    assert set(EXAMPLE_JOBS) <= set(names)
    assert names == sorted(names)


def test_job_description_is_the_first_docstring_paragraph():
    description = registry.get_job("httpCall").description

    assert description.startswith("Call a URL")
    assert "timeout interrupts" not in description


def test_load_jobs_returns_a_copy_of_the_registry():
    loaded = registry.load_jobs()
    loaded.pop("processData")

    assert "processData" in registry.load_jobs()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("__init__", id="dunder-init"),
        pytest.param("__class__", id="dunder-class"),
        pytest.param("__dict__", id="dunder-dict"),
        pytest.param("_private", id="private"),
        pytest.param("", id="empty"),
        pytest.param("x" * 10_000, id="10000-chars"),
        pytest.param("process_data", id="python-function-name"),
        pytest.param("processdata", id="wrong-case"),
        pytest.param("processData ", id="trailing-space"),
        pytest.param("examples.process_data", id="dotted-path"),
        pytest.param("load_jobs", id="registry-function"),
    ],
)
def test_get_job_raises_unknown_job_for_unregistered_names(name: str):
    with pytest.raises(errors.UnknownJob) as raised:
        registry.get_job(name)

    assert len(str(raised.value)) < 200


@pytest.mark.parametrize(("name", "is_async"), [("processData", False), ("sleep", False)])
def test_sync_example_jobs_are_not_async(name: str, is_async: bool):
    assert registry.get_job(name).is_async is is_async


def test_async_job_is_detected_as_async(jobs_registry: dict[str, registry.Job]):
    async def ping(param: Any, user: str) -> str:
        return f"pong for {user}"

    registry.job(name="asyncPing")(ping)

    assert registry.get_job("asyncPing").is_async is True
    assert registry.get_job("asyncPing").fn is ping


def test_job_without_name_is_registered_under_its_function_name(
    jobs_registry: dict[str, registry.Job],
):
    def plain_job(param: Any, user: str) -> None:
        """Do nothing.

        At length.
        """

    registry.job(plain_job)

    job = registry.get_job("plain_job")
    assert job.fn is plain_job
    assert job.description == "Do nothing."


def test_param_parameter_is_the_first_parameter():
    assert registry.get_job("processData").param_parameter.name == "param"


def one_parameter(param: Any) -> None: ...


def three_parameters(param: Any, user: str, extra: Any) -> None: ...


def no_parameter() -> None: ...


def star_args(*args: Any) -> None: ...


@pytest.mark.parametrize(
    "function", [one_parameter, three_parameters, no_parameter, star_args], ids=lambda f: f.__name__
)
def test_job_with_wrong_arity_is_refused(jobs_registry: dict[str, registry.Job], function: Any):
    before = dict(jobs_registry)

    with pytest.raises(ValueError, match=r"exactly \(param, user\)"):
        registry.job(name="wrongArity")(function)

    assert jobs_registry == before


@pytest.mark.parametrize("name", ["bad-name", "has space", "1st", "a.b"])
def test_job_name_must_be_an_identifier(jobs_registry: dict[str, registry.Job], name: str):
    def some_job(param: Any, user: str) -> None: ...

    with pytest.raises(ValueError, match="identifier"):
        registry.job(name=name)(some_job)

    assert name not in jobs_registry


def test_duplicate_name_from_another_function_is_refused(
    jobs_registry: dict[str, registry.Job],
):
    def impostor(param: Any, user: str) -> None: ...

    with pytest.raises(ValueError, match=r"already registered by jobs\.examples\.process_data"):
        registry.job(name="processData")(impostor)

    assert jobs_registry["processData"].fn is examples.process_data


def test_registering_the_same_function_again_is_allowed(
    jobs_registry: dict[str, registry.Job],
):
    returned = registry.job(name="processData")(examples.process_data)

    assert returned is examples.process_data
    assert registry.get_job("processData").fn is examples.process_data


def test_a_param_that_does_not_fit_raises_a_jobctl_error_naming_where():
    with pytest.raises(errors.InvalidParam) as raised:
        registry.get_job("processData").check_param(["a", 2, "c"])

    assert isinstance(raised.value, errors.JobctlError)
    assert raised.value.job_name == "processData"
    assert [p.location for p in raised.value.problems] == [(1,)]
    assert raised.value.problems[0].kind == "string_type"
    assert "processData's parameter (1: " in str(raised.value)


def test_a_param_that_fits_comes_back_validated():
    assert registry.get_job("processData").check_param(["a", "b"]) == ["a", "b"]
