"""The README stays a newcomer's page; docs/ documents every setting."""

from __future__ import annotations

import re
from pathlib import Path

from jobctl.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"


def test_every_setting_is_in_the_configuration_table() -> None:
    text = CONFIGURATION.read_text()
    missing = [
        f"JOBCTL_{name.upper()}"
        for name in Settings.model_fields
        if f"| `JOBCTL_{name.upper()}` |" not in text
    ]
    assert missing == []


def test_the_readme_is_short_and_every_page_it_links_exists() -> None:
    text = README.read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)

    assert len(text.splitlines()) <= 160
    assert [
        link for link in links if not link.startswith("http") and not (ROOT / link).exists()
    ] == []
    assert "make run" in text and "make test" in text
