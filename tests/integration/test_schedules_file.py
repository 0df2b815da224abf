"""``jobctl schedule export`` and ``apply`` on SQLite and PostgreSQL, through the CLI in this
process: an unchanged file writes nothing, a bad entry writes nothing and is named with its
line, ``--prune`` deletes exactly the rows left out, ``--keep-active-state`` keeps them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, event

from jobctl import errors, migrate
from jobctl.repository import Repository
from tests.conftest import ScheduleFactory
from tests.fixtures.cli import cli_env, run_cli
from tests.integration.test_migrations import DAILY_ID, PAUSED_ID, create_original_database

WRITES = ("INSERT", "UPDATE", "DELETE")
AUDIT_ACTOR = "jobctl_audit_actor"


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return cli_env(database_url=database_url, home=tmp_path, pycache=tmp_path / "pycache")


@contextmanager
def counted_writes() -> Iterator[list[str]]:
    """Every INSERT, UPDATE and DELETE any engine of this process sends while inside,
    but those naming the audit's actor (``Repository._writing``, on SQLite)."""
    writes: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(WRITES) and AUDIT_ACTOR not in statement:
            writes.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield writes
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def add_rows(repo: Repository, schedule_factory: ScheduleFactory, count: int) -> list[str]:
    """``count`` rows of varied values, one disabled, one with an alias and no param."""
    ids = []
    for index in range(count):
        spec = schedule_factory(
            cron="@daily" if index == 0 else f"{index} 3 * * *",
            param=None if index == 0 else [f"item-{index}", "ü"],
            is_active=index != 1,
            description=f"row {index}\nsecond line" if index == 2 else f"row {index}",
            priority=index,
            timezone=None if index == 3 else "Europe/Berlin",
        )
        ids.append(repo.add_schedule(spec).id)
    return ids


def export(env: dict[str, str], path: Path, *args: str) -> dict[str, Any]:
    result = run_cli("schedule", "export", *args, env=env)
    path.write_text(result.stdout)
    document = yaml.safe_load(result.stdout)
    assert isinstance(document, dict)
    return document


def write(path: Path, document: dict[str, Any]) -> str:
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    path.write_text(text)
    return text


def test_export_then_apply_writes_nothing(
    repo: Repository, schedule_factory: ScheduleFactory, env: dict[str, str], tmp_path: Path
):
    add_rows(repo, schedule_factory, 5)
    # jsonb gives 1e16 back as 10000000000000000; a number is the same number either way.
    repo.add_schedule(schedule_factory(job_name="sleep", param=1e16))
    repo.add_schedule(schedule_factory(job_name="sleep", param=1.0))
    before = repo.list_schedules()
    version = repo.schedule_version()
    path = tmp_path / "schedules.yaml"
    document = export(env, path)
    assert [entry["id"] for entry in document["schedules"]] == [row.id for row in before]

    for flags in ([], ["--prune"], ["--keep-active-state"]):
        with counted_writes() as writes:
            result = run_cli("schedule", "apply", "-f", str(path), *flags, env=env)
        assert writes == [], flags
        assert result.stdout == "applied: 0 add, 0 update, 0 delete, 7 unchanged\n"

    assert repo.schedule_version() == version
    assert repo.list_schedules() == before  # updatedAt included


def test_one_bad_entry_among_ten_writes_nothing_and_is_named_with_its_line(
    repo: Repository, schedule_factory: ScheduleFactory, env: dict[str, str], tmp_path: Path
):
    ids = add_rows(repo, schedule_factory, 9)
    before = repo.list_schedules()
    version = repo.schedule_version()
    path = tmp_path / "schedules.yaml"
    document = export(env, path)
    for entry in document["schedules"]:
        entry["cron"] = "30 5 * * *"  # nine valid updates...
    document["schedules"].append({"cron": "@hourly", "jobName": "processData"})  # ...an add
    document["schedules"][6]["timeout"] = -5  # ...and one bad entry
    text = write(path, document)
    bad_line = text.splitlines().index(f"- id: {ids[6]}") + 1

    with counted_writes() as writes:
        result = run_cli("schedule", "apply", "-f", str(path), "--prune", env=env, expect_rc=1)

    assert writes == []
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {path}: line {bad_line}: entry 7 ({ids[6]}): "
        "timeout: must be between 0 and 2147483647 ms, not -5"
    ]
    assert repo.list_schedules() == before
    assert repo.schedule_version() == version


def test_prune_deletes_exactly_the_rows_left_out_and_only_with_the_flag(
    repo: Repository, schedule_factory: ScheduleFactory, env: dict[str, str], tmp_path: Path
):
    ids = add_rows(repo, schedule_factory, 5)
    path = tmp_path / "schedules.yaml"
    document = export(env, path)
    document["schedules"] = [e for e in document["schedules"] if e["id"] not in ids[1:3]]
    write(path, document)

    result = run_cli("schedule", "apply", "-f", str(path), env=env)
    assert result.stdout == "applied: 0 add, 0 update, 0 delete, 3 unchanged\n"
    assert [row.id for row in repo.list_schedules()] == ids

    dry = run_cli("schedule", "apply", "-f", str(path), "--prune", "--dry-run", env=env)
    assert f"delete {ids[1]}\ndelete {ids[2]}\n" in dry.stdout
    assert [row.id for row in repo.list_schedules()] == ids

    result = run_cli("schedule", "apply", "-f", str(path), "--prune", env=env)
    assert result.stdout == (
        f"delete {ids[1]}\ndelete {ids[2]}\napplied: 0 add, 0 update, 2 delete, 3 unchanged\n"
    )
    assert [row.id for row in repo.list_schedules()] == [ids[0], *ids[3:]]


def test_is_active_is_applied_unless_keep_active_state(
    repo: Repository, schedule_factory: ScheduleFactory, env: dict[str, str], tmp_path: Path
):
    ids = add_rows(repo, schedule_factory, 3)
    path = tmp_path / "schedules.yaml"
    export(env, path)
    repo.update_schedule(ids[0], is_active=False)  # a maintenance toggle after the export
    repo.update_schedule(ids[2], priority=99)

    lines = path.read_text().splitlines()
    with counted_writes() as writes:
        result = run_cli("schedule", "apply", "-f", str(path), "--keep-active-state", env=env)
    assert [statement.split()[0] for statement in writes] == ["UPDATE"]
    assert result.stdout.splitlines() == [
        f"update {ids[2]} (line {lines.index(f'- id: {ids[2]}') + 1}): priority",
        "applied: 0 add, 1 update, 0 delete, 2 unchanged",
    ]
    assert repo.get_schedule(ids[0]).is_active is False
    assert repo.get_schedule(ids[2]).priority == 2

    result = run_cli("schedule", "apply", "-f", str(path), env=env)
    assert result.stdout.splitlines()[0] == f"update {ids[0]} (line 2): isActive"
    assert repo.get_schedule(ids[0]).is_active is True


def test_a_new_entry_gets_an_id_that_apply_prints(
    repo: Repository, schedule_factory: ScheduleFactory, env: dict[str, str], tmp_path: Path
):
    add_rows(repo, schedule_factory, 1)
    path = tmp_path / "schedules.yaml"
    document = export(env, path)
    document["schedules"].append(
        {"cron": "0 6 * * 1", "jobName": "processData", "param": ["x"], "isActive": False}
    )
    line = write(path, document).splitlines().index("- cron: 0 6 * * 1") + 1

    dry = run_cli("schedule", "apply", "-f", str(path), "--dry-run", env=env)
    assert f"add a new row (line {line})\n" in dry.stdout
    assert len(repo.list_schedules()) == 1

    result = run_cli("schedule", "apply", "-f", str(path), env=env)
    added, summary = result.stdout.splitlines()
    match = re.fullmatch(rf"add (\S+) \(line {line}\)", added)
    assert match, result.stdout
    assert summary == "applied: 1 add, 0 update, 0 delete, 1 unchanged"
    row = repo.get_schedule(match.group(1))
    assert (row.cron, row.param, row.is_active, row.overlap) == ("0 6 * * 1", ["x"], False, "allow")

    document["schedules"][-1]["id"] = row.id  # written back into the file, it is that row
    write(path, document)
    result = run_cli("schedule", "apply", "-f", str(path), env=env)
    assert result.stdout == "applied: 0 add, 0 update, 0 delete, 2 unchanged\n"


def test_export_of_one_job_has_only_its_rows(
    repo: Repository, schedule_factory: ScheduleFactory, env: dict[str, str], tmp_path: Path
):
    kept = repo.add_schedule(schedule_factory(job_name="sleep", param=1.5)).id
    repo.add_schedule(schedule_factory())
    document = export(env, tmp_path / "s.yaml", "--job", "sleep")
    assert [entry["id"] for entry in document["schedules"]] == [kept]


def test_apply_schedules_is_one_transaction(repo: Repository, schedule_factory: ScheduleFactory):
    (kept,) = add_rows(repo, schedule_factory, 1)
    missing = "00000000-0000-0000-0000-000000000000"
    new = "44444444-4444-4444-4444-444444444444"
    with pytest.raises(errors.ScheduleNotFound):
        repo.apply_schedules(
            adds=[(new, schedule_factory())],
            updates=[(kept, {"priority": 50})],
            deletes=[missing],
        )
    assert [(row.id, row.priority) for row in repo.list_schedules()] == [(kept, 0)]


@pytest.mark.parametrize("unmigrated_database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_the_original_systems_uuid_rows_export_and_apply_unchanged(
    unmigrated_database_url: str, unmigrated_engine: Engine, tmp_path: Path
):
    create_original_database(unmigrated_engine, id_type="UUID")
    migrate.upgrade(unmigrated_engine)
    repo = Repository(unmigrated_engine)
    env = cli_env(database_url=unmigrated_database_url, home=tmp_path, pycache=tmp_path)
    path = tmp_path / "schedules.yaml"
    # Two of the original's rows have params their jobs refuse: export warns, apply refuses.
    exported = run_cli("schedule", "export", env=env)
    warned = exported.stderr.splitlines()
    assert [line.split()[2] for line in warned] == [DAILY_ID, PAUSED_ID]
    assert all(line.endswith("apply refuses the file until it is fixed") for line in warned)
    path.write_text(exported.stdout)
    run_cli("schedule", "apply", "-f", str(path), env=env, expect_rc=1)
    repo.update_schedule(DAILY_ID, param=["a"])
    repo.update_schedule(PAUSED_ID, param={"url": "http://127.0.0.1:9/"})
    before = repo.list_schedules()
    document = export(env, path)

    with counted_writes() as writes:
        result = run_cli("schedule", "apply", "-f", str(path), env=env)
    assert writes == []
    assert result.stdout == f"applied: 0 add, 0 update, 0 delete, {len(before)} unchanged\n"

    document["schedules"].append({"id": "not-a-uuid", "cron": "@daily", "jobName": "processData"})
    write(path, document)
    result = run_cli("schedule", "apply", "-f", str(path), env=env, expect_rc=1)
    assert "'not-a-uuid' cannot be stored: JobSchedule.id holds UUIDs here" in result.stderr
    assert repo.list_schedules() == before
