"""What a Prefect state means for a JobHistory attempt: its status and its error."""

from __future__ import annotations

from prefect.client.schemas.objects import State, StateType

from jobctl.models import JobStatus

_LABELS: dict[str | StateType, str] = {
    "TimedOut": "timed out",
    StateType.CRASHED: "crashed",
    StateType.CANCELLED: "cancelled",
    StateType.CANCELLING: "cancelled",
}


def outcome_of(state: State) -> tuple[JobStatus, str | None]:
    """SUCCESS for Completed; otherwise FAILED with "<what happened>: <state message>"."""
    if state.type is StateType.COMPLETED:
        return JobStatus.SUCCESS, None
    label = _LABELS.get(state.name or "") or _LABELS.get(state.type) or "failed"
    return JobStatus.FAILED, f"{label}: {state.message or state.type.value}"
