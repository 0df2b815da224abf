"""The pure mapping from a JobSchedule row to the deployment that mirrors it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from prefect.client.schemas.objects import ConcurrencyLimitStrategy

from deployments import spec
from jobctl import cron, policy
from jobctl.records import SPEC_FIELDS, Schedule

ENTRYPOINT = "flows/jobs.py:process_data"
WORK_POOL = "jobctl-test"
DEFAULT_TIMEZONE = "Europe/Berlin"
DEFAULT_RETRY_DELAY_MS = 7_000
NOW = datetime(2026, 12, 1, tzinfo=UTC)
NOW_2028 = datetime(2028, 1, 1, tzinfo=UTC)

MakeRow = Callable[..., Schedule]


@pytest.fixture
def make_row() -> MakeRow:
    """Build a ``Schedule`` record; keyword arguments override any field."""

    def make(**overrides: Any) -> Schedule:
        values: dict[str, Any] = {
            "id": "sched-1",
            "cron": "*/5 * * * *",
            "job_name": "processData",
            "param": {"items": ["alpha", "beta"]},
            "is_active": True,
            "description": "a test schedule",
            "priority": 2,
            "timeout_ms": 600_000,
            "max_retries": 3,
            "timezone": "UTC",
            "retry_delay_ms": 2_000,
            "retry_backoff": "fixed",
            "overlap": "allow",
            "misfire_grace_ms": None,
        }
        values.update(overrides)
        return Schedule(**values)

    return make


def build(row: Schedule) -> spec.DeploymentSpec:
    return spec.spec_for(
        row,
        entrypoint=ENTRYPOINT,
        work_pool_name=WORK_POOL,
        default_timezone=DEFAULT_TIMEZONE,
        default_retry_delay_ms=DEFAULT_RETRY_DELAY_MS,
        default_misfire_grace_ms=60_000,
        now=NOW,
    )


def run_policy_of(deployment: spec.DeploymentSpec) -> dict[str, Any]:
    raw = deployment.job_variables["env"][policy.POLICY_ENV]
    assert isinstance(raw, str)
    decoded = json.loads(raw)
    assert isinstance(decoded, dict)
    return decoded


# Every editable field set to a value different from the factory's.
EVERY_OTHER_FIELD: dict[str, Any] = {
    "cron": "0 3 * * 1-5",
    "job_name": "httpCall",
    "param": {"url": "https://example.org"},
    "is_active": False,
    "description": "another description",
    "priority": 9,
    "timeout_ms": 5_000,
    "max_retries": 0,
    "timezone": "America/New_York",
    "retry_delay_ms": 60_000,
    "retry_backoff": "exponential",
    "overlap": "queue",
    "misfire_grace_ms": 1_000,
    "alert_to": "custom-webhook/another",
}


# -- identity ------------------------------------------------------------------------------


def test_every_editable_field_is_changed_by_the_identity_test():
    assert set(EVERY_OTHER_FIELD) == set(SPEC_FIELDS)


def test_deployment_name_is_derived_from_the_row_id_only(make_row: MakeRow):
    before = build(make_row())
    after = build(make_row(**EVERY_OTHER_FIELD))

    assert before.name == after.name == spec.deployment_name("sched-1")
    assert before.version != after.version


def test_rows_with_different_ids_get_different_deployment_names(make_row: MakeRow):
    assert build(make_row(id="a")).name != build(make_row(id="b")).name


@pytest.mark.parametrize(
    ("priority", "expected"),
    [(None, "priority-0"), (0, "priority-0"), (1, "priority-1"), (7, "priority-7")],
)
def test_queue_name_is_one_per_priority(priority: int | None, expected: str):
    assert spec.queue_name(priority) == expected


def test_null_and_zero_priority_map_to_the_same_queue_and_version(make_row: MakeRow):
    null = build(make_row(priority=None))
    zero = build(make_row(priority=0))

    assert null.work_queue_name == zero.work_queue_name == "priority-0"
    assert null.priority == zero.priority == 0
    assert null.version == zero.version


def test_deployment_uses_the_queue_of_its_priority(make_row: MakeRow):
    deployment = build(make_row(priority=4))

    assert deployment.work_queue_name == spec.queue_name(4)
    assert deployment.priority == 4


def test_tags_name_the_manager_the_job_and_the_schedule(make_row: MakeRow):
    deployment = build(make_row(id="sched-42", job_name="httpCall"))

    assert set(deployment.tags) == {"jobctl", "job:httpCall", "schedule:sched-42"}


@pytest.mark.parametrize(
    "schedule_id", ["sched-1", "0f8e2c4a-9b1d-4e3f-8a7b-6c5d4e3f2a1b", "with:colon", "7"]
)
def test_schedule_id_of_reads_back_the_row_id_from_the_tags(make_row: MakeRow, schedule_id: str):
    assert spec.schedule_id_of(build(make_row(id=schedule_id)).tags) == schedule_id


def test_schedule_id_of_tags_without_a_schedule_tag_is_none():
    assert spec.schedule_id_of(["jobctl", "job:processData"]) is None
    assert spec.schedule_id_of([]) is None


def test_spec_carries_the_row_fields(make_row: MakeRow):
    row = make_row()
    deployment = build(row)

    assert deployment.schedule_id == row.id
    assert deployment.flow_name == row.job_name
    assert deployment.cron == row.cron
    assert deployment.parameters == {"param": row.param}
    assert deployment.description == row.description
    assert deployment.entrypoint == ENTRYPOINT
    assert deployment.work_pool_name == WORK_POOL


@pytest.mark.parametrize(("is_active", "paused"), [(True, False), (False, True)])
def test_paused_is_not_is_active(make_row: MakeRow, is_active: bool, paused: bool):
    assert build(make_row(is_active=is_active)).paused is paused


# -- version -------------------------------------------------------------------------------

CONFIG_CHANGES = [
    pytest.param({"cron": "0 3 * * *"}, id="cron"),
    pytest.param({"timezone": "Asia/Tokyo"}, id="timezone"),
    pytest.param({"param": {"items": ["alpha"]}}, id="param"),
    pytest.param({"param": None}, id="param-null"),
    pytest.param({"priority": 3}, id="priority"),
    pytest.param({"job_name": "httpCall"}, id="job"),
    pytest.param({"description": "changed"}, id="description"),
    pytest.param({"description": None}, id="description-null"),
    pytest.param({"timeout_ms": 600_001}, id="timeout"),
    pytest.param({"timeout_ms": None}, id="timeout-null"),
    pytest.param({"max_retries": 4}, id="retries"),
    pytest.param({"retry_delay_ms": 5_000}, id="retry-delay"),
    pytest.param({"retry_delay_ms": None}, id="retry-delay-null"),
    pytest.param({"retry_backoff": "exponential"}, id="backoff"),
    pytest.param({"overlap": "skip"}, id="overlap-skip"),
    pytest.param({"overlap": "queue"}, id="overlap-queue"),
]


@pytest.mark.parametrize("change", CONFIG_CHANGES)
def test_version_changes_when_the_config_changes(make_row: MakeRow, change: dict[str, Any]):
    row = make_row()

    assert build(dataclasses.replace(row, **change)).version != build(row).version


def test_version_ignores_is_active_which_pause_and_resume_handle(make_row: MakeRow):
    active = build(make_row(is_active=True))
    paused = build(make_row(is_active=False))

    assert active.version == paused.version
    assert active.paused != paused.paused


def test_version_is_the_same_for_the_same_row(make_row: MakeRow):
    first = build(make_row())
    second = build(make_row())

    assert first.version == second.version
    assert first.version == first.config_hash()
    assert first.version != ""


def test_version_ignores_the_key_order_of_the_param(make_row: MakeRow):
    one = build(make_row(param={"a": 1, "b": [1, 2]}))
    other = build(make_row(param={"b": [1, 2], "a": 1}))

    assert one.version == other.version


# -- defaults and policies ------------------------------------------------------------------


def test_null_timezone_uses_the_default_timezone(make_row: MakeRow):
    assert build(make_row(timezone=None)).timezone == DEFAULT_TIMEZONE


def test_null_timezone_and_explicit_default_give_the_same_version(make_row: MakeRow):
    null = build(make_row(timezone=None))
    explicit = build(make_row(timezone=DEFAULT_TIMEZONE))

    assert null.version == explicit.version


def test_row_timezone_wins_over_the_default(make_row: MakeRow):
    assert build(make_row(timezone="Asia/Tokyo")).timezone == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("overlap", "limit", "strategy"),
    [("allow", None, None), ("skip", 1, "CANCEL_NEW"), ("queue", 1, "ENQUEUE")],
)
def test_overlap_policy_maps_to_deployment_concurrency(
    make_row: MakeRow, overlap: str, limit: int | None, strategy: str | None
):
    deployment = build(make_row(overlap=overlap))

    assert (deployment.concurrency_limit, deployment.collision_strategy) == (limit, strategy)


@pytest.mark.parametrize("overlap", ["skip", "queue"])
def test_collision_strategies_are_known_to_prefect(make_row: MakeRow, overlap: str):
    strategy = build(make_row(overlap=overlap)).collision_strategy

    assert strategy is not None
    assert ConcurrencyLimitStrategy(strategy).value == strategy


def test_run_policy_env_carries_retries_delay_backoff_and_timeout(make_row: MakeRow):
    deployment = build(
        make_row(
            max_retries=3,
            retry_delay_ms=4_000,
            retry_backoff="exponential",
            timeout_ms=600_000,
            misfire_grace_ms=None,
        )
    )

    assert run_policy_of(deployment) == {
        "retries": 3,
        "retry_delay_s": 4,
        "backoff": "exponential",
        "timeout_s": 600.0,
        "misfire_grace_s": 60.0,
    }


def test_run_policy_env_reads_back_as_a_run_policy(make_row: MakeRow):
    deployment = build(
        make_row(max_retries=2, retry_delay_ms=1_000, timeout_ms=90_000, misfire_grace_ms=5_000)
    )

    assert policy.RunPolicy.from_env(deployment.job_variables["env"]) == policy.RunPolicy(
        retries=2, retry_delay_s=1, backoff="fixed", timeout_s=90.0, misfire_grace_s=5.0
    )


def test_null_retry_delay_uses_the_default_from_settings(make_row: MakeRow):
    deployment = build(make_row(retry_delay_ms=None))

    assert run_policy_of(deployment)["retry_delay_s"] == DEFAULT_RETRY_DELAY_MS // 1000


def test_zero_retry_delay_stays_zero(make_row: MakeRow):
    assert run_policy_of(build(make_row(retry_delay_ms=0)))["retry_delay_s"] == 0


def test_null_max_retries_means_no_retries(make_row: MakeRow):
    assert run_policy_of(build(make_row(max_retries=None)))["retries"] == 0


@pytest.mark.parametrize(
    ("timeout_ms", "timeout_s"), [(None, None), (0, None), (600_000, 600.0), (1_500, 1.5)]
)
def test_run_policy_timeout_is_in_seconds_and_none_without_timeout(
    make_row: MakeRow, timeout_ms: int | None, timeout_s: float | None
):
    assert run_policy_of(build(make_row(timeout_ms=timeout_ms)))["timeout_s"] == timeout_s


def test_schedule_id_env_is_the_row_id(make_row: MakeRow):
    deployment = build(make_row(id="sched-77"))

    assert deployment.job_variables["env"][policy.SCHEDULE_ID_ENV] == "sched-77"


def test_job_variables_env_values_are_strings(make_row: MakeRow):
    env = build(make_row()).job_variables["env"]

    assert set(env) == {policy.POLICY_ENV, policy.SCHEDULE_ID_ENV, spec.HEARTBEAT_ENV}
    assert all(isinstance(value, str) for value in env.values())


# -- DST: the main schedule and the repeat schedules (docs/schedules.md) ----------------


def test_a_row_of_every_hour_with_a_day_restriction_gets_repeat_schedules(make_row: MakeRow):
    deployment = build(make_row(cron="*/15 * * * SUN", timezone="Europe/Berlin"))

    assert [r.instants[0] for r in deployment.repeats] == [
        datetime(2027, 10, 31, 1, tzinfo=UTC),
        datetime(2028, 10, 29, 1, tzinfo=UTC),
    ]
    assert deployment.repeat_slugs == {r.slug for r in deployment.repeats}
    assert deployment.main_schedule == ("*/15 * * * SUN", "Europe/Berlin")


def test_a_row_of_every_hour_without_day_restriction_gets_one_utc_schedule(make_row: MakeRow):
    deployment = build(make_row(cron="*/15 * * * *", timezone="Europe/Berlin"))

    assert deployment.utc_cron == "*/15 * * * *"
    assert deployment.main_schedule == ("*/15 * * * *", "UTC")
    assert deployment.timezone == "Europe/Berlin"  # the row's zone, as stored
    assert deployment.repeats == ()


@pytest.mark.parametrize(
    ("expression", "timezone"), [("*/15 * * * SUN", "UTC"), ("30 2 * * *", "Europe/Berlin")]
)
def test_rows_without_a_repeated_pass_keep_their_cron_and_zone(
    make_row: MakeRow, expression: str, timezone: str
):
    deployment = build(make_row(cron=expression, timezone=timezone))

    assert deployment.repeats == ()
    assert deployment.main_schedule == (expression, timezone)


def test_the_default_zone_decides_the_schedules(make_row: MakeRow):
    deployment = build(make_row(cron="*/15 * * * SUN", timezone=None))

    assert deployment.repeats != ()  # DEFAULT_TIMEZONE is Berlin's


def test_repeat_schedules_do_not_change_the_config_hash(make_row: MakeRow):
    row = make_row(cron="*/15 * * * SUN", timezone="Europe/Berlin")
    now_spec = build(row)
    next_year = dataclasses.replace(
        now_spec, repeats=cron.repeat_schedules(row.cron, "Europe/Berlin", NOW_2028)
    )

    assert next_year.repeats != now_spec.repeats
    assert next_year.config_hash() == now_spec.version


def test_the_hash_of_a_row_without_utc_cron_is_what_it_was_before_utc_cron(make_row: MakeRow):
    """Deployments synced before ``utc_cron`` existed are not rewritten for it."""
    deployment = build(make_row(cron="30 2 * * *", timezone="Europe/Berlin"))
    content = {f.name: getattr(deployment, f.name) for f in dataclasses.fields(deployment)}
    for name in ("paused", "version", "repeats", "utc_cron"):
        del content[name]
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)

    assert deployment.version == hashlib.sha256(canonical.encode()).hexdigest()[:16]
