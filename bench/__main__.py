"""``python -m bench [NAME ...] [--quick]``: run benchmarks, print their tables, write JSON.

Without a name, every benchmark runs, in the order below.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Console

from bench import (
    chaos,
    footprint_bench,
    history_bench,
    metrics_bench,
    precision_bench,
    processes,
    scale_bench,
    sync_bench,
    throughput_bench,
)


@dataclass(frozen=True)
class Options:
    rows: list[int]
    scale_rows: list[int]
    quick: bool
    minutes: float | None = None
    seed: int = chaos.DEFAULT_SEED
    chaos_rows: int = chaos.DEFAULT_ROWS


def _sync(options: Options, console: Console) -> bool:
    return sync_bench.run(options.rows, console)


def _scale(options: Options, console: Console) -> bool:
    return scale_bench.run(options.scale_rows, console)


def _history(options: Options, console: Console) -> bool:
    return bool(history_bench.run(options.quick, console=console)["all_met"])


def _precision(options: Options, console: Console) -> bool:
    return precision_bench.run(options.quick, console)


def _throughput(options: Options, console: Console) -> bool:
    return throughput_bench.run(options.quick, console)


def _footprint(options: Options, console: Console) -> bool:
    return footprint_bench.run(options.quick, console)


def _metrics(options: Options, console: Console) -> bool:
    return metrics_bench.run(options.quick, console)


def _chaos(options: Options, console: Console) -> bool:
    minutes = options.minutes or (5.0 if options.quick else chaos.DEFAULT_MINUTES)
    return chaos.run(minutes, options.seed, options.chaos_rows, console)


# name -> run(options, console) -> every target met
BENCHMARKS: dict[str, Callable[[Options, Console], bool]] = {
    "sync": _sync,
    "scale": _scale,
    "history": _history,
    "precision": _precision,
    "throughput": _throughput,
    "footprint": _footprint,
    "metrics": _metrics,
    "chaos": _chaos,
}
# Not in "every benchmark": the soak is a reliability run of its own (30 minutes).
ON_DEMAND = {"chaos"}


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
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run, of: {', '.join(BENCHMARKS)} (default: all but chaos)",
    )
    parser.add_argument(
        "--rows",
        type=_sizes,
        default=None,
        help="table sizes of the sync benchmark (default: "
        f"{','.join(map(str, sync_bench.DEFAULT_ROWS))})",
    )
    parser.add_argument(
        "--scale-rows",
        type=_sizes,
        default=None,
        help="table sizes of the scale benchmark (default: "
        f"{','.join(map(str, scale_bench.DEFAULT_ROWS))})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: fewer rows, runs and minutes everywhere",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help=f"chaos: minutes of faults (default: {chaos.DEFAULT_MINUTES:g}; 5 with --quick)",
    )
    parser.add_argument(
        "--seed", type=int, default=chaos.DEFAULT_SEED, help="chaos: the faults' seed"
    )
    parser.add_argument(
        "--chaos-rows",
        type=int,
        default=chaos.DEFAULT_ROWS,
        help=f"chaos: rows firing every minute (default: {chaos.DEFAULT_ROWS})",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    quick = bool(args.quick)
    options = Options(
        rows=args.rows or list(sync_bench.QUICK_ROWS if quick else sync_bench.DEFAULT_ROWS),
        scale_rows=args.scale_rows
        or list(scale_bench.QUICK_ROWS if quick else scale_bench.DEFAULT_ROWS),
        quick=quick,
        minutes=args.minutes,
        seed=args.seed,
        chaos_rows=args.chaos_rows,
    )
    # A wide table even when the output is a file or a pipe (rich's default there: 80).
    console = Console() if sys.stdout.isatty() else Console(width=150)
    all_met = True
    for name in args.names or [name for name in BENCHMARKS if name not in ON_DEMAND]:
        note = processes.load_text(processes.load_note())
        console.rule(f"benchmark: {name}{' (quick)' if quick else ''} — {note}")
        all_met = BENCHMARKS[name](options, console) and all_met
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
