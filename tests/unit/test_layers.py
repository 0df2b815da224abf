"""Every module of jobctl has its layer in the import contracts that `make lint` checks."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FACES = {"jobctl.cli", "jobctl.api", "jobctl.stack"}
BOUNDARY = ROOT / "jobctl" / "prefect_gateway"
# Prefect's client, and what opens one: only the boundary may import them.
CLIENT_MODULES = {"prefect.client.orchestration", "jobctl.prefect_gateway.connection"}


def _contract(contracts: list[dict[str, object]], contract_id: str) -> set[str]:
    found = next(c for c in contracts if c["id"] == contract_id)
    sources = found["source_modules"]
    assert isinstance(sources, list)
    return set(sources)


def test_every_jobctl_module_is_core_prefect_side_or_a_face() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    core = _contract(config["contracts"], "core")
    prefect_side = _contract(config["contracts"], "prefect-side")
    modules = {
        f"jobctl.{path.stem if path.is_file() else path.name}"
        for path in (ROOT / "jobctl").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }

    assert modules - core - prefect_side - FACES == set(), "give each new module a layer"
    assert core & prefect_side == set()
    assert {"deployments", "flows", "jobctl_warm"} <= prefect_side


def _client_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module in CLIENT_MODULES:
            names = {alias.name for alias in node.names}
            # The URL helpers are no client.
            if node.module != "jobctl.prefect_gateway.connection" or "prefect_client" in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        elif isinstance(node, ast.Import):
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno}"
                for alias in node.names
                if alias.name in CLIENT_MODULES
            ]
    return found


def test_only_the_prefect_boundary_opens_a_prefect_client() -> None:
    """Every call to Prefect's API goes through ``jobctl.prefect_gateway`` (import-linter
    sees an outside package whole, so this contract is checked here)."""
    offenders = [
        where
        for package in ("jobctl", "deployments", "flows", "jobctl_warm", "jobs")
        for path in sorted((ROOT / package).rglob("*.py"))
        if BOUNDARY not in path.parents
        for where in _client_imports(path)
    ]

    assert offenders == [], "open Prefect's client through jobctl.prefect_gateway"
