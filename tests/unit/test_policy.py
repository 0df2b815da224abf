"""A row's run policy: retry delays, and the environment variable that carries it."""

from __future__ import annotations

import json

import pytest

from jobctl import policy
from jobctl.policy import RunPolicy


@pytest.mark.parametrize("attempt", [1, 2, 3, 10])
def test_fixed_backoff_waits_the_same_delay_before_every_retry(attempt: int):
    assert RunPolicy(retries=5, retry_delay_s=3).retry_delay_before(attempt) == 3


@pytest.mark.parametrize(("attempt", "delay_s"), [(1, 3), (2, 6), (3, 12), (4, 24), (6, 96)])
def test_exponential_backoff_doubles_the_delay_after_each_attempt(attempt: int, delay_s: int):
    rule = RunPolicy(retries=6, retry_delay_s=3, backoff="exponential")

    assert rule.retry_delay_before(attempt) == delay_s


def test_exponential_backoff_with_zero_delay_never_waits():
    rule = RunPolicy(retries=3, retry_delay_s=0, backoff="exponential")

    assert [rule.retry_delay_before(n) for n in (1, 2, 3)] == [0, 0, 0]


@pytest.mark.parametrize(
    "rule",
    [
        RunPolicy(),
        RunPolicy(retries=3, retry_delay_s=2, backoff="fixed", timeout_s=600.0),
        RunPolicy(retries=1, retry_delay_s=0, backoff="exponential", timeout_s=None),
        RunPolicy(retries=10, retry_delay_s=1, backoff="exponential", timeout_s=0.5),
    ],
)
def test_to_env_and_from_env_round_trip(rule: RunPolicy):
    assert RunPolicy.from_env({policy.POLICY_ENV: rule.to_env()}) == rule


def test_to_env_is_json_with_units_in_the_names():
    encoded = RunPolicy(retries=2, retry_delay_s=1, backoff="fixed", timeout_s=30.0).to_env()

    assert json.loads(encoded) == {
        "retries": 2,
        "retry_delay_s": 1,
        "backoff": "fixed",
        "timeout_s": 30.0,
        "misfire_grace_s": None,
    }


def test_from_env_without_the_variable_is_none():
    assert RunPolicy.from_env({}) is None
    assert RunPolicy.from_env({policy.SCHEDULE_ID_ENV: "sched-1", "PATH": "/usr/bin"}) is None


def test_from_env_with_an_empty_variable_is_none():
    assert RunPolicy.from_env({policy.POLICY_ENV: ""}) is None


def delay_s_of_row(retry_delay_ms: int | None, default_retry_delay_ms: int = 10_000) -> int:
    return policy.from_row(
        max_retries=1,
        retry_delay_ms=retry_delay_ms,
        retry_backoff="fixed",
        timeout_ms=None,
        misfire_grace_ms=None,
        default_retry_delay_ms=default_retry_delay_ms,
        default_misfire_grace_ms=60_000,
    ).retry_delay_s


def test_from_row_converts_milliseconds_to_seconds():
    rule = policy.from_row(
        max_retries=4,
        retry_delay_ms=2_000,
        retry_backoff="exponential",
        timeout_ms=600_000,
        misfire_grace_ms=30_000,
        default_retry_delay_ms=10_000,
        default_misfire_grace_ms=60_000,
    )

    assert rule == RunPolicy(
        retries=4, retry_delay_s=2, backoff="exponential", timeout_s=600.0, misfire_grace_s=30.0
    )


def test_from_row_uses_the_default_misfire_grace_only_when_null():
    def grace_s(misfire_grace_ms: int | None) -> float | None:
        return policy.from_row(
            max_retries=None,
            retry_delay_ms=None,
            retry_backoff="fixed",
            timeout_ms=None,
            misfire_grace_ms=misfire_grace_ms,
            default_retry_delay_ms=0,
            default_misfire_grace_ms=60_000,
        ).misfire_grace_s

    assert grace_s(None) == 60.0
    assert grace_s(0) == 0.0


def test_from_row_uses_the_default_delay_only_when_the_delay_is_null():
    assert delay_s_of_row(None, default_retry_delay_ms=10_000) == 10
    assert delay_s_of_row(0, default_retry_delay_ms=10_000) == 0


@pytest.mark.parametrize(("retry_delay_ms", "delay_s"), [(1, 1), (999, 1), (1_000, 1), (2_500, 3)])
def test_from_row_rounds_a_partial_second_delay_up_to_whole_seconds(
    retry_delay_ms: int, delay_s: int
):
    assert delay_s_of_row(retry_delay_ms) == delay_s


@pytest.mark.parametrize(("timeout_ms", "timeout_s"), [(None, None), (0, None), (1, 0.001)])
def test_from_row_null_or_zero_timeout_means_no_timeout(
    timeout_ms: int | None, timeout_s: float | None
):
    rule = policy.from_row(
        max_retries=None,
        retry_delay_ms=None,
        retry_backoff="fixed",
        timeout_ms=timeout_ms,
        misfire_grace_ms=None,
        default_retry_delay_ms=0,
        default_misfire_grace_ms=60_000,
    )

    assert rule.timeout_s == timeout_s
    assert rule.retries == 0
