"""What a flow process forked from the warm template does.

It becomes what ``python -m prefect.engine`` would have been: a session of its own, the
run's working directory and environment, Prefect settings read again from that
environment, then the body of ``prefect/engine.py``'s ``__main__`` block. A forked child
ends with ``os._exit``, so Prefect's services (log and event shipping) are drained first,
as an interpreter's normal exit would.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ENGINE_MODULE = "prefect.engine"
# The name ``ps`` and ``top`` show for a flow process (its command line is the template's).
PROCESS_NAME = "jobctl-warm-run"
# The worker's ``sys.path``, which multiprocessing passes to its forkserver but Python 3.11
# does not apply (the template would otherwise import from the worker's working folder).
SYS_PATH_ENV = "JOBCTL_WARM_SYS_PATH"
# A file name: the flow process writes a cProfile of its run there (benchmarks).
PROFILE_ENV = "JOBCTL_WARM_PROFILE"
# Prefect's logging configuration of the template (``remember_logging``), by what it was
# built from: a flow process with the same inputs keeps it instead of building it again.
_template_logging: tuple[object, ...] | None = None


@dataclass(frozen=True)
class Start:
    """What the worker sends the template for one process."""

    cwd: str
    env: dict[str, str]
    stream_output: bool = True
    # Hooks only: which ones ("crashed" or "cancellation"), the run and its state (JSON).
    hooks: str | None = None
    flow_run_json: str = ""
    state_json: str = ""


def noop() -> None:
    """Started once when the template is built: returns when the preload is done."""


def run(start: Start) -> None:
    """The target of every forked process: a flow run, or the hooks of one."""
    _become(start)
    code = 0
    interrupted = False
    try:
        if start.hooks is None and os.environ.get(PROFILE_ENV):
            _profiled(_run_engine_main, os.environ[PROFILE_ENV])
        elif start.hooks is None:
            _run_engine_main()
        else:
            _run_hooks(start)
    except SystemExit as exc:
        code = exit_code(exc)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        drain()
    if interrupted:
        # What an interpreter does on an uncaught KeyboardInterrupt: die by SIGINT.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    raise SystemExit(code)


def _become(start: Start) -> None:
    os.setsid()
    with contextlib.suppress(OSError):
        with open("/proc/self/comm", "w") as comm:
            comm.write(PROCESS_NAME)
    if not start.stream_output:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    os.chdir(start.cwd)
    os.environ.clear()
    os.environ.update(start.env)
    sys.argv = [sys.executable]

    from prefect.context import refresh_global_settings_context
    from prefect.logging.configuration import setup_logging

    refresh_global_settings_context()
    # The run's settings (its environment, a profile, a settings file in its working
    # folder) may configure logging otherwise; building the same again costs 60 ms.
    if _logging_inputs() != _template_logging:
        setup_logging(incremental=False)


def remember_logging() -> None:
    """Called by the template: configure Prefect's logging (importing ``prefect.engine``
    has) and remember what from."""
    from prefect.logging.configuration import ensure_logging_setup

    global _template_logging
    ensure_logging_setup()
    _template_logging = _logging_inputs()


def _logging_inputs() -> tuple[object, ...]:
    """What ``prefect.logging.configuration.setup_logging`` builds its configuration from:
    the logging settings, the levels its ``logging.yml`` refers to, that file, and the
    ``PREFECT_LOGGING_*`` variables that override single keys of it."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    config = settings.logging.config_path
    try:
        config_file: object = (config, config.stat().st_mtime_ns)
    except OSError:
        config_file = None  # Prefect's own logging.yml then
    return (
        settings.logging.model_dump_json(),
        settings.internal.logging_level,
        settings.server.logging_level,
        config_file,
        tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("PREFECT_LOGGING_"))),
    )


def _run_engine_main() -> None:
    """Execute ``prefect/engine.py`` as ``__main__``, as ``python -m prefect.engine`` does."""
    spec = importlib.util.find_spec(ENGINE_MODULE)
    assert spec is not None and spec.loader is not None
    code = spec.loader.get_code(ENGINE_MODULE)  # type: ignore[attr-defined]
    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "__file__": spec.origin,
        "__package__": spec.parent,
        "__spec__": spec,
        "__loader__": spec.loader,
        "__builtins__": __builtins__,
    }
    exec(code, namespace)


def _profiled(call: Callable[[], None], path: str) -> None:
    import cProfile

    profile = cProfile.Profile()
    try:
        profile.runcall(call)
    finally:
        profile.dump_stats(path)


def _run_hooks(start: Start) -> None:
    import asyncio

    from prefect.client.schemas.objects import FlowRun, State
    from prefect.flows import load_flow_from_flow_run
    from prefect.runner._hook_runner import HookRunner

    flow_run = FlowRun.model_validate_json(start.flow_run_json)
    state = State.model_validate_json(start.state_json)
    runner = HookRunner(resolve_flow=load_flow_from_flow_run)
    if start.hooks == "crashed":
        asyncio.run(runner.run_crashed_hooks(flow_run, state))
    else:
        asyncio.run(runner.run_cancellation_hooks(flow_run, state))


def exit_code(exc: SystemExit) -> int:
    """The exit status an interpreter gives ``SystemExit(exc.code)``."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def drain() -> None:
    """An interpreter's exit, which ``os._exit`` skips: join threads, run atexit."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]
    except BaseException:
        traceback.print_exc()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
