from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from jobctl import validation
from jobctl.errors import InvalidSchedule
from jobctl.records import InvalidJson, ScheduleSpec

KNOWN_JOBS = frozenset({"processData", "httpCall", "sleep", "fail"})
LIMIT = validation.MAX_PARAM_BYTES
# A param that fits each known job's signature (the factory's default fits processData).
FITTING_PARAMS: dict[str, Any] = {
    "processData": ["alpha"],
    "httpCall": {"url": "http://127.0.0.1:9/"},
    "sleep": 1.5,
    "fail": "boom",
}

MakeSpec = Callable[..., ScheduleSpec]


def fields_of(spec: ScheduleSpec) -> list[str]:
    return [problem.field for problem in validation.problems_of(spec, KNOWN_JOBS)]


def test_factory_default_spec_has_no_problems(schedule_factory: MakeSpec):
    assert validation.problems_of(schedule_factory(), KNOWN_JOBS) == []


GOOD = [
    pytest.param({"cron": "@daily"}, id="cron-alias"),
    pytest.param({"cron": "0 */5 * * * *"}, id="cron-six-fields-zero-seconds"),
    pytest.param({"cron": "  0  3 * * * "}, id="cron-extra-whitespace"),
    *(
        pytest.param({"job_name": name, "param": FITTING_PARAMS[name]}, id=f"job-{name}")
        for name in sorted(KNOWN_JOBS)
    ),
    pytest.param({"timezone": None}, id="timezone-default"),
    pytest.param({"timezone": "UTC"}, id="timezone-utc"),
    pytest.param({"timezone": "America/Argentina/Buenos_Aires"}, id="timezone-deep"),
    pytest.param({"timeout_ms": None}, id="timeout-none"),
    pytest.param({"timeout_ms": 0}, id="timeout-zero-means-none"),
    pytest.param({"timeout_ms": 2**31 - 1}, id="timeout-int32-max"),
    pytest.param({"max_retries": None}, id="retries-none"),
    pytest.param({"max_retries": 0}, id="retries-zero"),
    pytest.param({"max_retries": 100}, id="retries-hundred"),
    pytest.param({"priority": None}, id="priority-none"),
    pytest.param({"priority": 0}, id="priority-zero"),
    pytest.param({"priority": 10}, id="priority-ten"),
    pytest.param({"retry_backoff": "fixed"}, id="backoff-fixed"),
    pytest.param({"retry_backoff": "exponential"}, id="backoff-exponential"),
    pytest.param({"overlap": "allow"}, id="overlap-allow"),
    pytest.param({"overlap": "skip"}, id="overlap-skip"),
    pytest.param({"overlap": "queue"}, id="overlap-queue"),
    pytest.param({"retry_delay_ms": None}, id="retry-delay-none"),
    pytest.param({"retry_delay_ms": 0}, id="retry-delay-zero"),
    pytest.param({"misfire_grace_ms": None}, id="misfire-grace-none"),
    pytest.param({"misfire_grace_ms": 0}, id="misfire-grace-zero"),
    pytest.param({"param": None}, id="param-none"),
    pytest.param({"job_name": "httpCall", "param": {}}, id="param-empty-object"),
    pytest.param({"job_name": "fail", "param": "text"}, id="param-string"),
    pytest.param({"job_name": "sleep", "param": 1.5}, id="param-number"),
    pytest.param({"job_name": "sleep", "param": "1.5"}, id="param-coerced-as-a-run-would"),
    pytest.param(
        {"job_name": "httpCall", "param": {"任務": "每日資料清理任務", "n": [1, None, True]}},
        id="param-unicode",
    ),
    pytest.param({"job_name": "fail", "param": "x" * (LIMIT - 2)}, id="param-exactly-64KiB"),
    pytest.param({"is_active": True}, id="active-true"),
    pytest.param({"is_active": False}, id="active-false"),
    pytest.param({"is_active": 1}, id="active-int-1-as-sqlite-stores-it"),
    pytest.param({"is_active": 0}, id="active-int-0-as-sqlite-stores-it"),
    pytest.param({"description": None}, id="description-none"),
    pytest.param({"description": "每日資料清理任務"}, id="description-unicode"),
]


@pytest.mark.parametrize("overrides", GOOD)
def test_problems_of_accepts_good_values(schedule_factory: MakeSpec, overrides: dict[str, Any]):
    assert fields_of(schedule_factory(**overrides)) == []


BAD = [
    pytest.param({"cron": "*/10 * * * * *"}, "cron", id="cron-sub-minute"),
    pytest.param({"cron": "61 * * * *"}, "cron", id="cron-minute-61"),
    pytest.param({"cron": "* * * *"}, "cron", id="cron-4-fields"),
    pytest.param({"cron": "0 0 * * * * *"}, "cron", id="cron-7-fields"),
    pytest.param({"cron": ""}, "cron", id="cron-empty"),
    pytest.param({"cron": None}, "cron", id="cron-none"),
    pytest.param({"cron": 5}, "cron", id="cron-int"),
    pytest.param({"job_name": "nope"}, "jobName", id="job-unknown"),
    pytest.param({"job_name": "process_data"}, "jobName", id="job-python-function-name"),
    pytest.param({"job_name": "__init__"}, "jobName", id="job-dunder"),
    pytest.param({"job_name": ""}, "jobName", id="job-empty"),
    pytest.param({"job_name": None}, "jobName", id="job-none"),
    pytest.param({"job_name": 5}, "jobName", id="job-int"),
    pytest.param({"job_name": ["processData"]}, "jobName", id="job-list"),
    pytest.param({"timezone": "Mars/Olympus_Mons"}, "timezone", id="timezone-unknown"),
    pytest.param({"timezone": "utc"}, "timezone", id="timezone-wrong-case"),
    pytest.param({"timezone": "+02:00"}, "timezone", id="timezone-offset"),
    pytest.param({"timezone": ""}, "timezone", id="timezone-empty"),
    pytest.param({"timezone": "../../etc/passwd"}, "timezone", id="timezone-path"),
    pytest.param({"timezone": "Europe"}, "timezone", id="timezone-region-directory"),
    pytest.param({"timezone": 1}, "timezone", id="timezone-int"),
    pytest.param({"timeout_ms": -1}, "timeout", id="timeout-negative"),
    pytest.param({"timeout_ms": 2**31}, "timeout", id="timeout-above-int32"),
    pytest.param({"timeout_ms": "1000"}, "timeout", id="timeout-string"),
    pytest.param({"timeout_ms": 1.5}, "timeout", id="timeout-float"),
    pytest.param({"timeout_ms": True}, "timeout", id="timeout-bool"),
    pytest.param({"max_retries": -1}, "maxRetries", id="retries-negative"),
    pytest.param({"max_retries": 101}, "maxRetries", id="retries-above-100"),
    pytest.param({"max_retries": "3"}, "maxRetries", id="retries-string"),
    pytest.param({"max_retries": False}, "maxRetries", id="retries-bool"),
    pytest.param({"priority": -1}, "priority", id="priority-negative"),
    pytest.param({"priority": "high"}, "priority", id="priority-string"),
    pytest.param({"priority": True}, "priority", id="priority-bool"),
    pytest.param({"retry_backoff": "linear"}, "retryBackoff", id="backoff-unknown"),
    pytest.param({"retry_backoff": None}, "retryBackoff", id="backoff-none"),
    pytest.param({"retry_backoff": "Fixed"}, "retryBackoff", id="backoff-wrong-case"),
    pytest.param({"overlap": "cancel"}, "overlap", id="overlap-unknown"),
    pytest.param({"overlap": None}, "overlap", id="overlap-none"),
    pytest.param({"retry_delay_ms": -1}, "retryDelay", id="retry-delay-negative"),
    pytest.param({"retry_delay_ms": "10s"}, "retryDelay", id="retry-delay-string"),
    pytest.param({"retry_delay_ms": True}, "retryDelay", id="retry-delay-bool"),
    pytest.param({"misfire_grace_ms": -1}, "misfireGrace", id="misfire-grace-negative"),
    pytest.param({"misfire_grace_ms": 2.5}, "misfireGrace", id="misfire-grace-float"),
    pytest.param({"param": "x" * (LIMIT - 1)}, "param", id="param-one-byte-over-64KiB"),
    pytest.param({"param": InvalidJson('{"unterminated')}, "param", id="param-invalid-json"),
    pytest.param({"param": {"ratio": float("nan")}}, "param", id="param-nan"),
    pytest.param({"param": {1, 2}}, "param", id="param-set"),
    pytest.param({"param": {"when": object()}}, "param", id="param-object"),
    pytest.param({"param": {"a": 1}}, "param", id="param-object-for-a-list-job"),
    pytest.param({"param": [1, 2]}, "param", id="param-numbers-for-a-list-of-text"),
    pytest.param({"job_name": "sleep", "param": "soon"}, "param", id="param-text-for-a-number"),
    pytest.param({"job_name": "httpCall", "param": ["x"]}, "param", id="param-list-for-a-dict"),
    pytest.param({"job_name": "sleep", "param": None}, "param", id="param-null-for-a-number"),
    pytest.param({"is_active": 2}, "isActive", id="active-int-2"),
    pytest.param({"is_active": "yes"}, "isActive", id="active-string"),
    pytest.param({"is_active": None}, "isActive", id="active-none"),
    pytest.param({"description": 5}, "description", id="description-int"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD)
def test_problems_of_reports_the_bad_field(
    schedule_factory: MakeSpec, overrides: dict[str, Any], field: str
):
    assert fields_of(schedule_factory(**overrides)) == [field]


@pytest.mark.parametrize(("overrides", "field"), BAD)
def test_problem_messages_are_short_and_printable(
    schedule_factory: MakeSpec, overrides: dict[str, Any], field: str
):
    (problem,) = validation.problems_of(schedule_factory(**overrides), KNOWN_JOBS)

    assert problem.message
    assert len(problem.message) <= 300
    assert str(problem) == f"{field}: {problem.message}"


def test_problems_of_reports_every_problem_at_once(schedule_factory: MakeSpec):
    spec = schedule_factory(
        cron="*/10 * * * * *",
        job_name="nope",
        timezone="Nowhere/Special",
        timeout_ms=-5,
        max_retries=1_000,
        priority=-1,
        retry_delay_ms=-1,
        misfire_grace_ms="soon",
        retry_backoff="linear",
        overlap="cancel",
        is_active="maybe",
        description=42,
        param=InvalidJson("{"),
    )

    assert sorted(fields_of(spec)) == sorted(
        [
            "cron",
            "jobName",
            "timezone",
            "timeout",
            "maxRetries",
            "priority",
            "retryDelay",
            "misfireGrace",
            "retryBackoff",
            "overlap",
            "isActive",
            "description",
            "param",
        ]
    )


def test_problems_of_truncates_a_huge_job_name(schedule_factory: MakeSpec):
    (problem,) = validation.problems_of(schedule_factory(job_name="j" * 10_000), KNOWN_JOBS)

    assert problem.field == "jobName"
    assert len(problem.message) < 200


def test_problems_of_names_the_sub_minute_cron(schedule_factory: MakeSpec):
    (problem,) = validation.problems_of(schedule_factory(cron="*/10 * * * * *"), KNOWN_JOBS)

    assert "sub-minute" in problem.message


def test_validated_returns_the_normalised_cron(schedule_factory: MakeSpec):
    spec = schedule_factory(cron="  0 */5  * * * * ")

    assert validation.validated(spec, KNOWN_JOBS).cron == "*/5 * * * *"


def test_validated_turns_integer_is_active_into_bool(schedule_factory: MakeSpec):
    result = validation.validated(schedule_factory(is_active=0), KNOWN_JOBS)

    assert result.is_active is False


def test_validated_keeps_every_other_field(schedule_factory: MakeSpec):
    spec = schedule_factory()

    assert validation.validated(spec, KNOWN_JOBS) == spec


def test_validated_raises_invalid_schedule_naming_the_schedule(schedule_factory: MakeSpec):
    spec = schedule_factory(cron="61 * * * *", timeout_ms=-1)

    with pytest.raises(InvalidSchedule) as raised:
        validation.validated(spec, KNOWN_JOBS, schedule_id="row-42")

    assert raised.value.schedule_id == "row-42"
    assert [p.field for p in raised.value.problems] == ["cron", "timeout"]
    message = str(raised.value)
    assert "row-42" in message
    assert "cron: " in message
    assert "timeout: " in message


def test_validated_without_schedule_id_still_lists_problems(schedule_factory: MakeSpec):
    with pytest.raises(InvalidSchedule, match="jobName: 'nope' is not a registered job") as raised:
        validation.validated(schedule_factory(job_name="nope"), KNOWN_JOBS)

    assert raised.value.schedule_id is None


def test_an_invalid_cron_is_a_jobctl_error() -> None:
    from jobctl import cron, errors

    with pytest.raises(errors.InvalidCron) as raised:
        cron.normalize_cron("61 * * * *")

    assert isinstance(raised.value, errors.JobctlError)
