"""The README documents every setting."""

from __future__ import annotations

from pathlib import Path

from jobctl.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme_table() -> None:
    text = README.read_text()
    missing = [
        f"JOBCTL_{name.upper()}"
        for name in Settings.model_fields
        if f"| `JOBCTL_{name.upper()}` |" not in text
    ]
    assert missing == []
