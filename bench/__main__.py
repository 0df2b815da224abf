"""``python -m bench``: run every benchmark, print its tables, write its JSON results."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rich.console import Console

from bench import history_bench, sync_bench


def _history(sizes: Sequence[int], quick: bool, console: Console) -> bool:
    return bool(history_bench.run(quick, console=console)["all_met"])


def _sync(sizes: Sequence[int], quick: bool, console: Console) -> bool:
    return sync_bench.run(sizes, console)


# name -> run(sizes, quick, console) -> every target met
BENCHMARKS: dict[str, Callable[[Sequence[int], bool, Console], bool]] = {
    sync_bench.NAME: _sync,
    "history": _history,
}


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated counts: {text!r}") from None
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError("row counts must be positive")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--rows",
        type=_sizes,
        default=list(sync_bench.DEFAULT_ROWS),
        help="comma-separated table sizes (default: %(default)s)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: only {','.join(map(str, sync_bench.QUICK_ROWS))} rows",
    )
    args = parser.parse_args(argv)
    sizes: list[int] = list(sync_bench.QUICK_ROWS) if args.quick else args.rows
    # A wide table even when the output is a file or a pipe (rich's default there: 80).
    console = Console() if sys.stdout.isatty() else Console(width=150)
    all_met = True
    for name, run in BENCHMARKS.items():
        console.rule(f"benchmark: {name} — rows {', '.join(map(str, sizes))}")
        all_met = run(sizes, args.quick, console) and all_met
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
