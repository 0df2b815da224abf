"""Database fixtures and factories shared by every test layer.

PostgreSQL follows procrastinate's recipe: one migrated template database per session,
cloned per test with ``CREATE DATABASE ... TEMPLATE`` and dropped at teardown. SQLite gets
a fresh file in ``tmp_path``. Prefect fixtures live in their own plugin files.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn, Protocol

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from jobctl import db, migrate
from jobctl.records import ScheduleSpec
from jobctl.repository import Repository
from tests.fixtures.sqlite_copy import migrated_sqlite_copy

TESTS_DIR = Path(__file__).parent
LAYER_MARKERS = {layer: TESTS_DIR / layer for layer in ("unit", "integration", "e2e")}
LAYER_ORDER = ["e2e", "integration", "unit"]
# Files that run for minutes on one xdist worker: the 5-minute chaos soak (6 to 7 min
# alone) and the 200-run topology test (2 min alone).
LONGEST_FILES = ["e2e/test_chaos.py", "e2e/test_topology.py"]

pytest_plugins = [
    "tests.fixtures.prefect",
    "tests.fixtures.sync",
    "tests.fixtures.http_target",
    "tests.fixtures.flaky_proxy",
    "tests.fixtures.postgres_cluster",
]

# The maintenance database: used only to CREATE and DROP the test databases.
POSTGRES_ADMIN_URL = os.environ.get(
    "JOBCTL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SQLITE = "sqlite"
POSTGRESQL = "postgresql"
BACKENDS = [pytest.param(SQLITE, id="sqlite"), pytest.param(POSTGRESQL, id="postgres")]
DATABASE_FIXTURES = ("database_url", "unmigrated_database_url")


class ScheduleFactory(Protocol):
    def __call__(self, **overrides: Any) -> ScheduleSpec: ...


# -- markers -----------------------------------------------------------------------------


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Longest files first: xdist hands files out in this order (reordering by test count
    # is off), so a long end-to-end file never starts last and runs alone at the end.
    items.sort(key=_expected_length)
    for item in items:
        for marker, directory in LAYER_MARKERS.items():
            if item.path.is_relative_to(directory):
                item.add_marker(marker)
        if _uses_postgres(item):
            item.add_marker(pytest.mark.postgres)
        # Every generated-input test is in the reliability report, with the cases it tried.
        if hasattr(getattr(item, "obj", None), "hypothesis"):
            item.add_marker(pytest.mark.reliability)


def _expected_length(item: pytest.Item) -> int:
    """0 for the longest: the files known to run for minutes, then the end-to-end tests,
    the integration tests and the unit tests."""
    path = item.path.relative_to(TESTS_DIR).as_posix()
    if path in LONGEST_FILES:
        return LONGEST_FILES.index(path)
    return len(LONGEST_FILES) + LAYER_ORDER.index(path.split("/")[0])


def _uses_postgres(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return False
    return any(callspec.params.get(name) == POSTGRESQL for name in DATABASE_FIXTURES)


# -- PostgreSQL helpers --------------------------------------------------------------------


def postgres_url(database: str) -> str:
    """The URL of ``database`` on the test server, in the form jobctl expects."""
    return make_url(POSTGRES_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


def _postgres_unreachable(exc: Exception) -> NoReturn:
    message = f"PostgreSQL is unreachable at {POSTGRES_ADMIN_URL}: {exc}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _create_database(admin: Engine, name: str, template: str) -> None:
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))


def _drop_database(admin: Engine, name: str) -> None:
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _random_database_name() -> str:
    return f"jobctl_test_{uuid.uuid4().hex[:16]}"


def _migrate(database_url: str) -> None:
    engine = db.create_db_engine(database_url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An AUTOCOMMIT engine on the maintenance database, for CREATE/DROP DATABASE only."""
    admin = create_engine(
        POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with admin.connect():
            pass
    except OperationalError as exc:
        admin.dispose()
        _postgres_unreachable(exc)
    yield admin
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_template(postgres_admin: Engine) -> Iterator[str]:
    """A database migrated to head once per session; tests clone it."""
    name = f"jobctl_test_template_{os.getpid()}"
    _drop_database(postgres_admin, name)  # left over by a crashed run that had our pid
    _create_database(postgres_admin, name, template="template0")
    try:
        _migrate(postgres_url(name))
        yield name
    finally:
        _drop_database(postgres_admin, name)


def _cloned_postgres_database(request: pytest.FixtureRequest, template: str) -> Iterator[str]:
    admin: Engine = request.getfixturevalue("postgres_admin")
    name = _random_database_name()
    _create_database(admin, name, template=template)
    yield postgres_url(name)
    _drop_database(admin, name)


# -- database fixtures -------------------------------------------------------------------


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jobctl.db'}"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of its own for each test, on SQLite and PostgreSQL."""
    if request.param == SQLITE:
        yield migrated_sqlite_copy(tmp_path / "jobctl.db")
        return
    template: str = request.getfixturevalue("postgres_template")
    yield from _cloned_postgres_database(request, template)


@pytest.fixture(params=BACKENDS)
def unmigrated_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database without any table, on SQLite and PostgreSQL."""
    if request.param == SQLITE:
        yield _sqlite_url(tmp_path)
        return
    yield from _cloned_postgres_database(request, "template0")


def _engine_for(url: str) -> Iterator[Engine]:
    engine = db.create_db_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the migrated database of ``database_url``."""
    yield from _engine_for(database_url)


@pytest.fixture
def unmigrated_engine(unmigrated_database_url: str) -> Iterator[Engine]:
    yield from _engine_for(unmigrated_database_url)


@pytest.fixture
def repo(engine: Engine) -> Repository:
    return Repository(engine)


# -- factories ---------------------------------------------------------------------------


@pytest.fixture
def schedule_factory() -> ScheduleFactory:
    """Build a valid ``ScheduleSpec``; keyword arguments override any field."""

    def make(**overrides: Any) -> ScheduleSpec:
        values: dict[str, Any] = {
            "cron": "*/5 * * * *",
            "job_name": "processData",
            "param": ["alpha", "beta"],
            "is_active": True,
            "description": "a test schedule",
            "priority": 1,
            "timeout_ms": 30_000,
            "max_retries": 2,
            "timezone": "Europe/Berlin",
            "retry_delay_ms": 1_000,
            "retry_backoff": "exponential",
            "overlap": "skip",
            "misfire_grace_ms": 60_000,
        }
        values.update(overrides)
        return ScheduleSpec(**values)

    return make
