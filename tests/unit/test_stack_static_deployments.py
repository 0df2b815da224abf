"""`jobctl up` deploys prefect.yaml's static flows into its pool, named apart from other
pools' so that two stacks on one Prefect server keep one each."""

from __future__ import annotations

import yaml

from jobctl.cli.stack import PREFECT_YAML, in_pool


def _names_and_pools(config: dict[str, object]) -> list[tuple[str, str]]:
    deployments = config["deployments"]
    assert isinstance(deployments, list)
    return [(d["name"], d["work_pool"]["name"]) for d in deployments]


def test_the_files_own_pool_keeps_the_names_of_the_file() -> None:
    config = yaml.safe_load(PREFECT_YAML.read_text())
    (pool,) = {d["work_pool"]["name"] for d in config["deployments"]}

    assert _names_and_pools(in_pool(config, pool)) == _names_and_pools(config)


def test_another_pool_gets_deployments_of_its_own_name_and_the_rest_as_in_the_file() -> None:
    config = yaml.safe_load(PREFECT_YAML.read_text())

    teams = [in_pool(config, team) for team in ("team-a", "team-b")]

    a, b = (_names_and_pools(moved) for moved in teams)
    assert [pool for _, pool in a] == ["team-a"] * len(config["deployments"])
    assert not {name for name, _ in a} & {name for name, _ in b}  # no deployment shared
    assert [name for name, _ in a] == [f"{d['name']}-team-a" for d in config["deployments"]]
    for original, moved in zip(config["deployments"], teams[0]["deployments"], strict=True):
        rest = {k: v for k, v in moved.items() if k not in ("name", "work_pool")}
        assert rest == {k: v for k, v in original.items() if k not in ("name", "work_pool")}
        assert moved["work_pool"]["work_queue_name"] == original["work_pool"]["work_queue_name"]
    assert config == yaml.safe_load(PREFECT_YAML.read_text())  # the file's config untouched
