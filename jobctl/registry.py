"""The job registry: ``@job`` records a function under a name; look-ups find only those.

A job is ``fn(param, user) -> result``, sync or async. Names come from rows and requests,
so they are looked up in this registry and never resolved with ``getattr``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from pydantic import TypeAdapter, ValidationError

from jobctl import errors

JOBS_PACKAGE = "jobs"
SYSTEM_USER = "system"

JobFunction = Callable[..., Any]
F = TypeVar("F", bound=JobFunction)


@dataclass(frozen=True)
class Job:
    name: str
    fn: JobFunction
    description: str

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    @property
    def param_parameter(self) -> inspect.Parameter:
        return next(iter(inspect.signature(self.fn).parameters.values()))

    def check_param(self, param: Any) -> Any:
        """``param`` validated against the job's signature, as a flow run validates it;
        ``InvalidParam`` when it does not fit, or is no JSON (NaN and Infinity, which
        Python's JSON reader takes, could not be stored in its history row)."""
        try:
            json.dumps(param, allow_nan=False)
        except ValueError as exc:
            problem = errors.ParamProblem((), f"is not JSON: {exc}", "json_invalid")
            raise errors.InvalidParam(self.name, [problem]) from None
        try:
            return _param_adapter(self.fn).validate_python(param)
        except ValidationError as exc:
            problems = [
                errors.ParamProblem(tuple(e["loc"]), e["msg"], e["type"])
                for e in exc.errors(include_url=False, include_input=False)
            ]
            raise errors.InvalidParam(self.name, problems) from None


@functools.cache
def _param_adapter(fn: JobFunction) -> TypeAdapter[Any]:
    parameter = next(iter(inspect.signature(fn).parameters.values()))
    return TypeAdapter(typing.get_type_hints(fn).get(parameter.name, Any))


_jobs: dict[str, Job] = {}


@overload
def job(fn: F, /) -> F: ...
@overload
def job(*, name: str | None = None) -> Callable[[F], F]: ...
def job(fn: F | None = None, /, *, name: str | None = None) -> F | Callable[[F], F]:
    """Register ``fn`` as a job, under ``name`` or the function's own name."""

    def register(function: F) -> F:
        job_name = name or function.__name__
        _check_signature(job_name, function)
        existing = _jobs.get(job_name)
        if existing is not None and existing.fn is not function:
            same_place = (existing.fn.__module__, existing.fn.__qualname__) == (
                function.__module__,
                function.__qualname__,
            )
            if not same_place:  # a module imported twice re-registers itself: allowed
                raise ValueError(
                    f"job {job_name!r} is already registered by "
                    f"{existing.fn.__module__}.{existing.fn.__qualname__}"
                )
        _jobs[job_name] = Job(
            name=job_name,
            fn=function,
            description=inspect.cleandoc(function.__doc__ or "").split("\n\n")[0],
        )
        return function

    return register(fn) if fn is not None else register


def _check_signature(name: str, function: JobFunction) -> None:
    if not name.isidentifier():
        raise ValueError(f"job name {name!r} must be an identifier")
    parameters = list(inspect.signature(function).parameters.values())
    if len(parameters) != 2:
        raise ValueError(f"job {name!r} must take exactly (param, user)")


def load_jobs() -> dict[str, Job]:
    """Import the ``jobs`` package (which registers every job) and return the registry."""
    importlib.import_module(JOBS_PACKAGE)
    return dict(_jobs)


def get_job(name: str) -> Job:
    registered = load_jobs()
    if name not in registered:
        raise errors.UnknownJob(f"no job is registered as {name[:100]!r}")
    return registered[name]


def job_names() -> list[str]:
    return sorted(load_jobs())
