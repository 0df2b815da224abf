"""The settings a warm worker hands each flow process: computed once per settings object."""

from __future__ import annotations

from prefect.settings import PREFECT_LOGGING_LEVEL, get_current_settings, temporary_settings

from jobctl_warm.worker import _settings_environment


def test_each_run_gets_the_workers_current_settings_in_a_copy_of_its_own() -> None:
    first = _settings_environment(get_current_settings())
    first["PREFECT_API_URL"] = "http://changed-by-one-run"
    again = _settings_environment(get_current_settings())
    assert again == get_current_settings().to_environment_variables(exclude_unset=True)
    with temporary_settings(updates={PREFECT_LOGGING_LEVEL: "ERROR"}):
        changed = _settings_environment(get_current_settings())
    assert changed["PREFECT_LOGGING_LEVEL"] == "ERROR"
    assert _settings_environment(get_current_settings()) == again
