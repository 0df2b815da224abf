"""``python -m jobctl.cli``: the ``jobctl`` command."""

from jobctl.cli import main

main()
