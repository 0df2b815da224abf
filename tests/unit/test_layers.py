"""Every module of jobctl has its layer in the import contracts that `make lint` checks."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FACES = {"jobctl.cli", "jobctl.api", "jobctl.stack"}


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
