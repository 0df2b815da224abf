"""Schedules as code: a YAML file of JobSchedule rows, and the plan that brings the table to it.

Pure: parsing keeps each entry's line, planning compares entries with rows already read;
neither touches the database (the repository applies a plan in one transaction).

The file::

    schedules:
    - id: 0b6d...            # absent on a new entry: apply gives it one and prints it
      cron: 0 3 * * *
      jobName: processData
      param: [a, b]
      isActive: true
      ...                     # every column of jobctl.fields by its original name

A column left out of an entry takes its default, as ``jobctl schedule add`` does.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml

from jobctl import validation
from jobctl.cron import normalize_cron
from jobctl.errors import InvalidCron, InvalidSchedule, InvalidSchedulesFile, shown
from jobctl.fields import FIELD_OF_COLUMN, SCHEDULE_FIELDS
from jobctl.records import InvalidJson, Schedule, ScheduleSpec

TOP_KEY = "schedules"
ID_KEY = "id"


@dataclass(frozen=True)
class Entry:
    """One valid entry of the file: its line, its id (None for a new row), its row."""

    line: int
    schedule_id: str | None
    spec: ScheduleSpec


class Action(enum.Enum):
    ADD = "add"
    UPDATE = "update"
    DELETE = "delete"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Change:
    """What apply does to one row; ``columns`` are the changed ones of an update."""

    action: Action
    schedule_id: str
    line: int | None = None
    spec: ScheduleSpec | None = None
    columns: tuple[str, ...] = ()
    new_id: bool = False  # the id was made for an entry without one

    def describe(self, *, dry_run: bool = False) -> str:
        """One line; a dry run does not show the id it would give a new entry."""
        where = f" (line {self.line})" if self.line is not None else ""
        if dry_run and self.new_id:
            return f"add a new row{where}"
        if self.action is Action.UPDATE:
            return f"update {self.schedule_id}{where}: {', '.join(self.columns)}"
        return f"{self.action.value} {self.schedule_id}{where}"


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...] = field(default=())

    def of(self, action: Action) -> list[Change]:
        return [change for change in self.changes if change.action is action]

    @property
    def writes_nothing(self) -> bool:
        return all(change.action is Action.UNCHANGED for change in self.changes)

    def summary(self) -> str:
        return ", ".join(f"{len(self.of(action))} {action.value}" for action in Action)

    def updates(self) -> list[tuple[str, dict[str, Any]]]:
        """(id, {field name: new value}) of every update, for the repository."""
        return [
            (
                change.schedule_id,
                {
                    FIELD_OF_COLUMN[c]: getattr(change.spec, FIELD_OF_COLUMN[c])
                    for c in change.columns
                },
            )
            for change in self.of(Action.UPDATE)
        ]

    def adds(self) -> list[tuple[str, ScheduleSpec]]:
        return [
            (change.schedule_id, change.spec)
            for change in self.of(Action.ADD)
            if change.spec is not None
        ]

    def deletes(self) -> list[str]:
        return [change.schedule_id for change in self.of(Action.DELETE)]


# -- export ------------------------------------------------------------------------------


def export(rows: Iterable[Schedule], known_jobs: Collection[str]) -> tuple[str, list[str]]:
    """The YAML text of ``rows``, and a warning per row that apply would refuse as it is."""
    warnings: list[str] = []
    entries: list[dict[str, Any]] = []
    for row in rows:
        problems = validation.id_problems(row.id) + validation.problems_of(row, known_jobs)
        if problems:
            warnings.append(
                f"schedule {row.id} is invalid ({'; '.join(map(str, problems))}): "
                "apply refuses the file until it is fixed"
            )
        entry: dict[str, Any] = {ID_KEY: row.id}
        for f in SCHEDULE_FIELDS:
            value = getattr(row, f.name)
            if isinstance(value, InvalidJson):  # warned above; its text, to fix by hand
                value = value.text
            entry[f.column] = value
        entries.append(entry)
    text = yaml.dump(
        {TOP_KEY: entries},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
    )
    return text, warnings


class _Dumper(yaml.SafeDumper):
    """Text of several lines as a literal block (``|``), readable in a diff."""


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if any(c in value for c in "\r\x85\u2028\u2029"):
        # YAML reads these as line breaks too, and PyYAML's other styles then write text
        # that reads back differently: double quotes escape them.
        style: str | None = '"'
    else:
        style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_text)


# -- parse -------------------------------------------------------------------------------


def parse(text: str, known_jobs: Collection[str]) -> list[Entry]:
    """The entries of a schedules file, each validated as the CLI and API validate a row.

    Raises ``InvalidSchedulesFile`` naming every bad entry with its line.
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            raise InvalidSchedulesFile([f"line {line}: not valid YAML: {exc.problem}"]) from None
        except yaml.YAMLError as exc:
            raise InvalidSchedulesFile([f"not valid YAML: {exc}"]) from None
        return _entries(loader, root, known_jobs)
    finally:
        loader.dispose()


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _entries(
    loader: yaml.SafeLoader, root: yaml.Node | None, known_jobs: Collection[str]
) -> list[Entry]:
    if root is None:
        raise InvalidSchedulesFile([f"the file is empty; write `{TOP_KEY}: []` to mean no rows"])
    items = _top_items(root)
    problems: list[str] = []
    entries: list[Entry] = []
    first_line_of_id: dict[str, int] = {}
    for number, node in enumerate(items, start=1):
        line = _line(node)
        try:
            entry = _entry(loader, node, line, known_jobs)
        except _BadEntry as exc:
            problems.append(f"line {line}: entry {number}{exc.where}: {exc.message}")
            continue
        if entry.schedule_id is not None:
            seen = first_line_of_id.setdefault(entry.schedule_id, line)
            if seen != line:
                problems.append(
                    f"line {line}: entry {number} ({entry.schedule_id}): "
                    f"id already used by the entry at line {seen}"
                )
                continue
        entries.append(entry)
    if problems:
        raise InvalidSchedulesFile(problems)
    return entries


def _top_items(root: yaml.Node) -> list[yaml.Node]:
    expected = f"a mapping with one key {TOP_KEY!r} holding a list of schedules"
    if not isinstance(root, yaml.MappingNode):
        raise InvalidSchedulesFile([f"line {_line(root)}: expected {expected}"])
    keys = [key.value for key, _ in root.value]
    if keys != [TOP_KEY]:
        raise InvalidSchedulesFile(
            [f"line {_line(root)}: expected {expected}, not keys {', '.join(map(str, keys))}"]
        )
    value = root.value[0][1]
    if isinstance(value, yaml.ScalarNode) and value.tag == "tag:yaml.org,2002:null":
        return []
    if not isinstance(value, yaml.SequenceNode):
        raise InvalidSchedulesFile([f"line {_line(value)}: {TOP_KEY!r} must be a list"])
    return list(value.value)


class _BadEntry(Exception):
    def __init__(self, message: str, schedule_id: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = f" ({schedule_id})" if isinstance(schedule_id, str) else ""


def _entry(
    loader: yaml.SafeLoader, node: yaml.Node, line: int, known_jobs: Collection[str]
) -> Entry:
    if not isinstance(node, yaml.MappingNode):
        raise _BadEntry("expected a mapping of column: value")
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if key in values:
            problems.append(f"{key} given twice (line {_line(key_node)})")
            continue
        if key != ID_KEY and key not in FIELD_OF_COLUMN:
            problems.append(f"unknown column {shown(key)} at line {_line(key_node)}")
            continue
        try:
            values[key] = loader.construct_object(value_node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:
            problems.append(f"{key}: not a value ({' '.join(str(exc).split())})")
    has_id = ID_KEY in values
    schedule_id = values.pop(ID_KEY, None)
    if has_id:
        problems.extend(str(problem) for problem in validation.id_problems(schedule_id))
    problems.extend(f"{column}: required" for column in ("cron", "jobName") if column not in values)
    if problems:
        raise _BadEntry("; ".join(problems), schedule_id)
    spec = ScheduleSpec(**{FIELD_OF_COLUMN[column]: value for column, value in values.items()})
    try:
        spec = validation.validated(spec, known_jobs)
    except InvalidSchedule as exc:
        raise _BadEntry("; ".join(str(p) for p in exc.problems), schedule_id) from None
    return Entry(line=line, schedule_id=schedule_id, spec=spec)


# -- plan --------------------------------------------------------------------------------


def plan(
    entries: Sequence[Entry],
    current: Sequence[Schedule],
    *,
    prune: bool = False,
    keep_active_state: bool = False,
    new_id: Any = None,
) -> Plan:
    """What apply does: add entries without a row, update rows that differ, delete rows
    absent from the file (only with ``prune``). ``new_id`` makes ids for new entries
    (tests pass a fixed one); ``keep_active_state`` leaves ``isActive`` of existing rows."""
    make_id = new_id or (lambda: str(uuid.uuid4()))
    rows = {row.id: row for row in current}
    changes: list[Change] = []
    for entry in entries:
        row = rows.get(entry.schedule_id) if entry.schedule_id is not None else None
        if row is None:
            schedule_id = entry.schedule_id or make_id()
            changes.append(
                Change(
                    Action.ADD,
                    schedule_id,
                    entry.line,
                    entry.spec,
                    new_id=entry.schedule_id is None,
                )
            )
            continue
        spec = entry.spec
        if keep_active_state:
            spec = spec.replace(is_active=row.is_active)
        columns = tuple(
            f.column
            for f in SCHEDULE_FIELDS
            if not _same(f.name, getattr(spec, f.name), getattr(row, f.name))
        )
        action = Action.UPDATE if columns else Action.UNCHANGED
        changes.append(Change(action, row.id, entry.line, spec, columns))
    in_file = {entry.schedule_id for entry in entries}
    if prune:
        changes.extend(Change(Action.DELETE, row.id) for row in current if row.id not in in_file)
    return Plan(tuple(changes))


def _same(name: str, wanted: Any, stored: Any) -> bool:
    """Whether a stored value already is the wanted one: JSON compared as JSON (``1`` and
    ``true`` differ, ``1.0``, ``1`` and ``1e0`` do not, nor does key order: PostgreSQL's
    jsonb may give a number back in another form), cron by its normal form."""
    if name == "param":
        if isinstance(stored, InvalidJson):
            return False
        try:
            return bool(_canonical(wanted) == _canonical(stored))
        except RecursionError:
            return False
    if name == "cron" and isinstance(stored, str):
        try:
            return bool(normalize_cron(stored) == wanted)
        except InvalidCron:
            return False
    return type(wanted) is type(stored) and bool(wanted == stored)


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, int | float):
        return ("number", Decimal(repr(value)).normalize())
    if isinstance(value, list | tuple):
        return ("list", tuple(_canonical(item) for item in value))
    if isinstance(value, dict):
        return ("object", tuple(sorted((str(k), _canonical(v)) for k, v in value.items())))
    return (type(value).__name__, value)
