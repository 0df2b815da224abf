"""Where the Prefect API is, as Prefect's own settings say."""

from __future__ import annotations

from prefect.settings import get_current_settings


def prefect_api_url() -> str | None:
    url = get_current_settings().api.url
    return url.rstrip("/") if url else None
