"""``python -m bench``: run every benchmark, print its tables, write its JSON results."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rich.console import Console

from bench import sync_bench

# name -> run(sizes, console) -> every target met
BENCHMARKS: dict[str, Callable[[Sequence[int], Console], bool]] = {
    sync_bench.NAME: sync_bench.run,
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
    console = Console()
    all_met = True
    for name, run in BENCHMARKS.items():
        console.rule(f"benchmark: {name} — rows {', '.join(map(str, sizes))}")
        all_met = run(sizes, console) and all_met
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
