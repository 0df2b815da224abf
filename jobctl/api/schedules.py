"""The JobSchedule rows: list, read, add, change, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response

from jobctl import registry, validation
from jobctl.api.dependencies import SECURED, ActingRepository, RepositoryDep
from jobctl.api.schemas import ScheduleCreate, ScheduleFields, ScheduleOut
from jobctl.records import ScheduleSpec

router = APIRouter(prefix="/v1/job/schedules", tags=["schedules"], dependencies=SECURED)


@router.get("")
def list_schedules(repository: RepositoryDep) -> list[ScheduleOut]:
    return [ScheduleOut.of(row) for row in repository.list_schedules()]


@router.get("/{schedule_id}")
def get_schedule(schedule_id: str, repository: RepositoryDep) -> ScheduleOut:
    return ScheduleOut.of(repository.get_schedule(schedule_id))


@router.post("", status_code=201)
def add_schedule(body: ScheduleCreate, repository: ActingRepository) -> ScheduleOut:
    spec = ScheduleSpec(**body.spec_changes(include_defaults=True))
    checked = validation.validated(spec, registry.job_names())
    return ScheduleOut.of(repository.add_schedule(checked))


@router.patch("/{schedule_id}")
def update_schedule(
    schedule_id: str, body: ScheduleFields, repository: ActingRepository
) -> ScheduleOut:
    changes = body.spec_changes(include_defaults=False)
    current = repository.get_schedule(schedule_id)
    checked = validation.validated(
        current.spec().replace(**changes), registry.job_names(), schedule_id
    )
    if not changes:
        return ScheduleOut.of(current)
    row = repository.update_schedule(
        schedule_id, **{name: getattr(checked, name) for name in changes}
    )
    return ScheduleOut.of(row)


@router.delete("/{schedule_id}", status_code=204)
def delete_schedule(schedule_id: str, repository: ActingRepository) -> Response:
    repository.delete_schedule(schedule_id)
    return Response(status_code=204)
