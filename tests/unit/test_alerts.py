"""The alert automations jobctl wants, and what it takes to get there (pure)."""

from __future__ import annotations

from uuid import uuid4

from prefect.events.schemas.automations import Automation, AutomationCore

from jobctl.prefect import alerts

POOL = "jobctl"
BLOCK = uuid4()


def wanted(
    slug: str = "custom-webhook/oncall", rows: tuple[str, ...] = ("a", "b")
) -> dict[str, AutomationCore]:
    cores = alerts.desired_automations(POOL, slug, BLOCK, list(rows), crash_window_s=130)
    return {core.name: core for core in cores}


def existing(core: AutomationCore, **changes: object) -> Automation:
    return Automation(id=uuid4(), **{**core.model_dump(), **changes})


def test_each_block_gets_a_failed_and_a_crashed_automation_named_for_the_pool() -> None:
    names = sorted(wanted())
    assert names == [
        "jobctl:jobctl:alert:custom-webhook/oncall",
        "jobctl:jobctl:alert:custom-webhook/oncall:crashed",
    ]


def test_the_config_hash_changes_with_the_rows_and_not_with_their_order() -> None:
    first = wanted(rows=("a", "b"))
    assert {c.description for c in first.values()} == {
        c.description for c in wanted(rows=("b", "a")).values()
    }
    assert {c.description for c in first.values()} != {
        c.description for c in wanted(rows=("a",)).values()
    }


def test_an_unchanged_automation_is_left_alone_and_a_changed_one_updated() -> None:
    desired = wanted()
    current = [existing(core) for core in desired.values()]
    assert alerts.plan_alerts(desired, current, POOL).writes == 0

    changed = wanted(rows=("a",))
    plan = alerts.plan_alerts(changed, current, POOL)
    assert len(plan.update) == 2 and not plan.create and not plan.delete


def test_ours_no_longer_wanted_and_duplicates_are_deleted_others_never() -> None:
    desired = wanted()
    ours = [existing(core) for core in desired.values()]
    duplicate = existing(next(iter(desired.values())))
    users = existing(next(iter(desired.values())), tags=["mine"])  # same name, not our tags
    other_pool = existing(next(iter(alerts.desired_automations("other", "x/y", BLOCK, ["a"], 130))))

    plan = alerts.plan_alerts({}, [*ours, duplicate, users, other_pool], POOL)
    assert set(plan.delete) == {a.id for a in (*ours, duplicate)}

    kept = alerts.plan_alerts(desired, [*ours, duplicate, users], POOL)
    assert kept.delete == [max((ours[0].id, duplicate.id), key=str)] and kept.unchanged == 2


def test_a_slug_must_be_block_type_slash_name() -> None:
    assert alerts.split_slug("custom-webhook/oncall") == ("custom-webhook", "oncall")
    for bad in ("oncall", "/oncall", "custom-webhook/", "a/b/c"):
        assert alerts.split_slug(bad) is None
