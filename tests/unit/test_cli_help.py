"""`jobctl --help` lists every subcommand without importing any (``SUMMARIES``)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click
import pytest

from jobctl.cli import SUBCOMMANDS, SUMMARIES


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_summary_is_the_first_paragraph_of_its_commands_help(name: str) -> None:
    module, attribute = SUBCOMMANDS[name].split(":")
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command) and command.help is not None
    first_paragraph = " ".join(command.help.split("\n\n")[0].split())

    assert SUMMARIES[name] == first_paragraph


def test_the_summaries_name_exactly_the_subcommands() -> None:
    assert set(SUMMARIES) == set(SUBCOMMANDS)


def test_help_lists_every_subcommand_and_imports_none_of_them() -> None:
    probe = (
        "import sys\n"
        "from jobctl.cli import cli\n"
        "try:\n"
        "    cli.main(args=['--help'], prog_name='jobctl')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(name for name in sys.modules if name.startswith(('prefect', 'jobctl.cli.'))"
        " and name not in ('jobctl.cli.context',)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )

    *help_lines, imported = result.stdout.splitlines()
    listed = {
        line.split()[0]: " ".join(line.split()[1:]) for line in help_lines if line[:2] == "  "
    }
    for name, summary in SUMMARIES.items():
        assert summary.startswith(listed[name].removesuffix("...")), result.stdout
    assert imported == "[]", imported
