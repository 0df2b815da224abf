"""Every module of jobctl has its layer in the import contracts that `make lint` checks,
and its path tells which: the core at the top level of ``jobctl``, the Prefect side in
``jobctl.prefect`` (with ``deployments``, ``flows`` and ``jobctl_warm``), the faces in
``jobctl.cli`` and ``jobctl.api``. One exception: ``jobctl.runtime``, the API jobs import
(``jobctl.runtime.scheduled_time()``), stays at the top level and is Prefect side."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREFECT_SIDE = "jobctl.prefect"
FACES = {"jobctl.cli", "jobctl.api"}
# On the Prefect side though at the top level: the public API jobs import.
EXCEPTIONS = {"jobctl.runtime"}
BOUNDARY = ROOT / "jobctl" / "prefect" / "gateway"
# Prefect's client, and what opens one: only the boundary may import them.
CLIENT_MODULES = {"prefect.client.orchestration", "jobctl.prefect.gateway.connection"}


def _contract(contracts: list[dict[str, object]], contract_id: str, key: str) -> set[str]:
    found = next(c for c in contracts if c["id"] == contract_id)
    modules = found[key]
    assert isinstance(modules, list)
    return set(modules)


def _top_level_modules() -> set[str]:
    return {
        f"jobctl.{path.stem if path.is_file() else path.name}"
        for path in (ROOT / "jobctl").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }


def test_every_jobctl_module_is_core_prefect_side_or_a_face() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
    core = _contract(contracts, "core", "source_modules")
    prefect_side = _contract(contracts, "prefect-side", "source_modules")
    top_level = _top_level_modules()

    # The path tells the layer: every top-level module is the core, but the packages of
    # the other layers and the one exception.
    assert top_level - core == {PREFECT_SIDE, *FACES, *EXCEPTIONS}, (
        "a new module of jobctl/ goes in the core contract's source_modules, or in "
        "jobctl/prefect/, jobctl/cli/ or jobctl/api/"
    )
    assert core <= top_level, "the core contract names a module that is not at the top level"
    assert {m for m in prefect_side if m.startswith("jobctl.")} == {PREFECT_SIDE, *EXCEPTIONS}
    assert {"deployments", "flows", "jobctl_warm"} <= prefect_side
    assert {PREFECT_SIDE, *FACES, *EXCEPTIONS} <= _contract(contracts, "core", "forbidden_modules")
    assert FACES <= _contract(contracts, "prefect-side", "forbidden_modules")


def _client_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module in CLIENT_MODULES:
            names = {alias.name for alias in node.names}
            # The URL helpers are no client.
            if node.module != "jobctl.prefect.gateway.connection" or "prefect_client" in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        elif isinstance(node, ast.Import):
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno}"
                for alias in node.names
                if alias.name in CLIENT_MODULES
            ]
    return found


def test_only_the_prefect_boundary_opens_a_prefect_client() -> None:
    """Every call to Prefect's API goes through ``jobctl.prefect.gateway`` (import-linter
    sees an outside package whole, so this contract is checked here)."""
    offenders = [
        where
        for package in ("jobctl", "deployments", "flows", "jobctl_warm", "jobs")
        for path in sorted((ROOT / package).rglob("*.py"))
        if BOUNDARY not in path.parents
        for where in _client_imports(path)
    ]

    assert offenders == [], "open Prefect's client through jobctl.prefect.gateway"
