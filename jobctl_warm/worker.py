"""The ``jobctl-warm`` worker type: Prefect's process worker, with each flow process forked
from a warm template instead of started as two fresh interpreters.

This module is the ``prefect.collections`` entry point: Prefect imports it at server start
and whenever it looks worker types up, so it imports only what defining the class needs
(Prefect's process worker, which it extends); the template machinery is imported by
``setup``.

Everything but the start of the process is Prefect's: the job configuration and variables
of the process worker, its executor (state proposals, crash by exit code or signal,
cancellation through the control channel, then SIGTERM and SIGKILL), its hooks. One
executor context serves every run of the worker (Prefect's process worker builds a client,
a control listener and a cancellation observer per run).
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio
import anyio.abc
from prefect.exceptions import InfrastructureNotFound
from prefect.workers.process import (
    ProcessJobConfiguration,
    ProcessWorker,
    ProcessWorkerResult,
)

from jobctl import processes

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun, State
    from prefect.runner._control_channel import ControlChannel
    from prefect.runner._flow_run_executor import (
        FlowRunExecutionResult,
        FlowRunExecutorContext,
    )
    from prefect.runner._process_manager import ProcessHandle
    from prefect.settings import Settings

    from jobctl_warm.template import Template

WORKER_TYPE = "jobctl-warm"
# Runs whose environment the hook runner remembers (hooks may fire after the run's task).
REMEMBERED_RUNS = 1000


class WarmWorker(ProcessWorker):
    type = WORKER_TYPE
    # The job configuration and variables are the process worker's.
    _description = (
        "jobctl's process worker: each flow run is a process forked from a template that "
        "has already imported Prefect and the jobs, so a run starts in milliseconds. "
        "Restart the worker (or let `jobctl up` reload it) after a code deploy."
    )
    _display_name = "jobctl warm process"
    # Its job configuration and behaviour are the process worker's, documented there.
    _documentation_url = ProcessWorker._documentation_url

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._template: Template | None = None
        self._executor_context: FlowRunExecutorContext | None = None
        self._hooks: _ForkHookRunner | None = None
        self._runs_by_pid: dict[int, UUID] = {}

    @property
    def template(self) -> Template:
        if self._template is None:
            raise RuntimeError("the worker is not set up")
        return self._template

    async def setup(self) -> None:
        from prefect.runner._flow_run_executor import FlowRunExecutorContext

        from jobctl.settings import Settings
        from jobctl_warm.template import Template

        await super().setup()
        self._template = Template(self._logger)
        seconds = await anyio.to_thread.run_sync(self._template.build)
        self._logger.info("warm template ready in %.1f s (pid %s)", seconds, self._template.pid)
        self._hooks = _ForkHookRunner(self._template)
        self._executor_context = await self._exit_stack.enter_async_context(
            FlowRunExecutorContext()
        )
        if Settings().worker_reload:
            await self._watch_code()

    async def _watch_code(self) -> None:
        """Renew the template when a file under ``jobs/`` changes (``JOBCTL_WORKER_RELOAD``)."""
        from jobctl_warm import reload

        root = reload.package_dir()
        if root is None:
            self._logger.warning("no jobs package found: code changes are not watched")
            return
        watchers = await self._exit_stack.enter_async_context(anyio.create_task_group())
        # Unwound first: the watcher stops before anything it uses.
        self._exit_stack.callback(watchers.cancel_scope.cancel)
        watchers.start_soon(reload.watch, root, self.renew_template, self._logger)
        self._logger.info("watching %s: a change builds a new warm template", root)

    def renew_template(self) -> None:
        """New code for the next runs: retire the template and build a new one (blocking).

        Runs in flight finish on the template that forked them."""
        self.template.retire()
        seconds = self.template.build()
        self._logger.info("new warm template ready in %.1f s (pid %s)", seconds, self.template.pid)

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
    ) -> ProcessWorkerResult:
        if configuration._command_configured:
            # The run names its own command (job variable ``command``): it starts that
            # command, as Prefect's process worker does; only the engine is forked warm.
            return await super().run(flow_run, configuration, task_status)
        if task_status is None:
            task_status = anyio.TASK_STATUS_IGNORED
        context = self._executor_context
        if context is None or self._hooks is None:
            raise RuntimeError("the worker is not set up")
        working_dir = (
            tempfile.TemporaryDirectory(suffix="prefect")
            if not configuration.working_dir
            else contextlib.nullcontext(configuration.working_dir)
        )
        execution: FlowRunExecutionResult | None = None
        pid: int | None = None
        with working_dir as directory:
            cwd = Path(directory).resolve()
            env = {key: value for key, value in configuration.env.items() if value is not None}
            self._hooks.remember(flow_run.id, cwd, env, configuration.stream_output)
            starter = _ForkStarter(
                self.template,
                cwd=cwd,
                env=env,
                stream_output=configuration.stream_output,
                control_channel=context.control_channel,
            )
            executor = context.create_executor(
                flow_run, starter, propose_submitting=False, hook_runner=self._hooks
            )

            async def execute(
                *, task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED
            ) -> None:
                nonlocal execution
                execution = await executor.submit(task_status=task_status)

            try:
                async with anyio.create_task_group() as task_group:
                    handle = await task_group.start(execute)
                    pid = handle.pid
                    if pid is None:
                        raise RuntimeError("Flow run process has no PID")
                    self._runs_by_pid[pid] = flow_run.id
                    task_status.started(pid)
            finally:
                if pid is not None:
                    self._runs_by_pid.pop(pid, None)
        if execution is None or execution.status_code is None:
            raise RuntimeError("Failed to start flow run process.")
        return ProcessWorkerResult(
            status_code=execution.status_code, identifier=str(execution.handle.pid)
        )

    async def kill_infrastructure(
        self,
        infrastructure_pid: str,
        configuration: ProcessJobConfiguration,
        grace_seconds: int = 30,
    ) -> None:
        """Stop a flow process of this worker (a run cancelled before it started).

        The executor's own cancellation (its observer of this worker's Cancelling runs)
        hands the engine the cancel intent before its SIGTERM, so the run ends Cancelled;
        a SIGTERM from here first would end it Crashed ("aborted by a termination
        signal"). So this waits the grace period for that path, and signals only a
        process still alive after it. Only this worker's live children are signalled: a
        pid from another machine or worker is ``InfrastructureNotFound``.
        """
        try:
            pid = int(infrastructure_pid.rsplit(":", 1)[-1])
        except ValueError:
            raise InfrastructureNotFound(f"not a process id: {infrastructure_pid!r}") from None
        flow_run_id = self._runs_by_pid.get(pid)
        if flow_run_id is None or self._executor_context is None:
            raise InfrastructureNotFound(f"process {pid} is not a flow process of this worker")
        process_manager = self._executor_context.process_manager
        if not await process_manager.wait_for_exit(flow_run_id, grace_seconds):
            await process_manager.kill(flow_run_id, grace_seconds)


class _SessionScope:
    """Signals the flow process's session (it calls ``setsid``), so what the job started
    ends with it; the process alone if the session does not exist yet."""

    wait_after_graceful_kill = True

    def is_alive(self, pid: int) -> bool:
        return processes.exists(pid)

    def _signal(self, pid: int, sig: int) -> None:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            os.kill(pid, sig)

    def graceful_kill(self, pid: int) -> None:
        self._signal(pid, signal.SIGTERM)

    def hard_kill(self, pid: int) -> None:
        self._signal(pid, signal.SIGKILL)

    def close(self) -> None:
        pass


class _ForkStarter:
    """Prefect's ``EngineCommandStarter``, forking from the template instead of spawning
    ``python -m prefect.engine``: the same environment, the same control channel."""

    def __init__(
        self,
        template: Template,
        *,
        cwd: Path,
        env: dict[str, str],
        stream_output: bool,
        control_channel: ControlChannel | None,
    ) -> None:
        self._template = template
        self._cwd = cwd
        self._env = env
        self._stream_output = stream_output
        self._control_channel = control_channel

    async def start(
        self,
        flow_run: FlowRun,
        task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        from prefect.runner._process_manager import ProcessHandle
        from prefect.settings import get_current_settings
        from prefect.utilities.processutils import sanitize_subprocess_env

        from jobctl_warm import child

        control_env: dict[str, str] = {}
        registered = False
        if self._control_channel is not None:
            try:
                port, token = self._control_channel.register(flow_run.id)
            except RuntimeError:
                pass  # no loopback listener: the kill-only cancellation path, as Prefect's
            else:
                control_env = {"PREFECT__CONTROL_PORT": str(port), "PREFECT__CONTROL_TOKEN": token}
                registered = True
        env: dict[str, str | None] = {**os.environ, **self._env}
        env.update(_settings_environment(get_current_settings()))
        env.update(
            {
                "PREFECT__FLOW_RUN_ID": str(flow_run.id),
                "PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS": "false",
                "PREFECT__DEPLOYMENT_NAME": self._env.get("PREFECT__DEPLOYMENT_NAME"),
                **control_env,
            }
        )
        start = child.Start(
            cwd=str(self._cwd),
            env=sanitize_subprocess_env(env),
            stream_output=self._stream_output,
        )
        handed_off = False
        try:
            process = await anyio.to_thread.run_sync(self._template.start, child.run, start)
            handle = ProcessHandle(process, termination_scope=_SessionScope())  # type: ignore[arg-type]
            handed_off = True
            task_status.started(handle)
            await self._template.wait(process)
        except BaseException:
            if registered and not handed_off and self._control_channel is not None:
                self._control_channel.unregister(flow_run.id)
            raise


_last_settings_environment: tuple[Settings, dict[str, str]] | None = None


def _settings_environment(settings: Settings) -> dict[str, str]:
    """``settings.to_environment_variables(exclude_unset=True)``, computed again only when
    the worker's settings object changes: 18 ms of CPU per run otherwise."""
    global _last_settings_environment
    if _last_settings_environment is None or _last_settings_environment[0] is not settings:
        environment = settings.to_environment_variables(exclude_unset=True)
        _last_settings_environment = (settings, environment)
    return dict(_last_settings_environment[1])


class _ForkHookRunner:
    """``on_crashed`` and ``on_cancellation`` hooks in a process forked from the template,
    with the environment of the run they are for (the row's schedule id, its database)."""

    def __init__(self, template: Template) -> None:
        self._template = template
        self._runs: collections.OrderedDict[UUID, tuple[Path, dict[str, str], bool]] = (
            collections.OrderedDict()
        )

    def remember(self, flow_run_id: UUID, cwd: Path, env: dict[str, str], stream: bool) -> None:
        self._runs[flow_run_id] = (cwd, env, stream)
        while len(self._runs) > REMEMBERED_RUNS:
            self._runs.popitem(last=False)

    async def run_cancellation_hooks(self, flow_run: FlowRun, state: State) -> None:
        if state.is_cancelling():
            await self._run("cancellation", flow_run, state)

    async def run_crashed_hooks(self, flow_run: FlowRun, state: State) -> None:
        if state.is_crashed():
            await self._run("crashed", flow_run, state)

    async def _run(self, hooks: str, flow_run: FlowRun, state: State) -> None:
        from prefect.logging.loggers import flow_run_logger

        from jobctl_warm import child

        cwd, env, stream = self._runs.get(flow_run.id, (Path.cwd(), dict(os.environ), True))
        if not cwd.is_dir():  # the run's temporary folder is gone
            cwd = Path(tempfile.gettempdir())
        start = child.Start(
            cwd=str(cwd),
            env=env,
            stream_output=stream,
            hooks=hooks,
            flow_run_json=flow_run.model_dump_json(),
            state_json=state.model_dump_json(),
        )
        try:
            process = await anyio.to_thread.run_sync(self._template.start, child.run, start)
            status = await self._template.wait(process)
            if status != 0:
                raise RuntimeError(f"the hook process exited with status {status}")
        except Exception:
            flow_run_logger(flow_run).warning(
                "Runner failed to execute on_%s hooks for flow run %r.",
                hooks,
                flow_run.id,
                exc_info=True,
            )
