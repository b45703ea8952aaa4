"""What every benchmark script shares: the result row, robust statistics and the table.

Importing this module also puts the checkout's root on ``sys.path``, so that
``python benchmarks/<script>.py`` measures the ``workbench`` of this checkout without installing
it. It owns no measurement: each ``bench_*`` module measures one thing against one peer.

The machines these run on are shared and noisy, so the scripts alternate the variants inside
each round, repeat rounds, and report medians and ratios rather than a single time.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = [
    "ROOT",
    "Row",
    "Timing",
    "cli",
    "fmt",
    "median",
    "print_rows",
    "rotated",
    "timed",
]

COLUMNS = ("benchmark", "measure", "ours", "peer", "ratio", "target", "met?")


@dataclass(frozen=True)
class Row:
    """One line of the results table; values are already formatted for reading."""

    benchmark: str
    measure: str
    ours: str
    peer: str
    ratio: str
    target: str
    met: bool | None  # None: the row has no target, it is there to explain another row

    def cells(self) -> tuple[str, ...]:
        met = "-" if self.met is None else ("yes" if self.met else "NO")
        return (self.benchmark, self.measure, self.ours, self.peer, self.ratio, self.target, met)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def fmt(value: float | None, digits: int = 3, unit: str = "") -> str:
    """A number for the table; ``None`` (not measured) reads as a dash."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def rotated(variants: Sequence[str], round_index: int) -> list[str]:
    """The variants in the order for this round: each goes first in turn, so none is always
    measured on a warmer (or more contended) machine than the others."""
    shift = round_index % len(variants)
    return [*variants[shift:], *variants[:shift]]


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float  # CPU of the whole process, all threads: less sensitive to other processes


def timed(work: Callable[[], object]) -> Timing:
    """How long ``work`` took, with the garbage collector settled first so that a collection
    owed by the previous variant is not charged to this one."""
    gc.collect()
    cpu = time.process_time()
    start = time.perf_counter()
    work()
    return Timing(time.perf_counter() - start, time.process_time() - cpu)


def print_rows(rows: Sequence[Row], *, file: TextIO | None = None) -> None:
    """The rows as a plain-text table with the columns of :data:`COLUMNS`."""
    out = file if file is not None else sys.stdout
    table = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]

    def render(line: Sequence[str]) -> str:
        return " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))

    print(render(COLUMNS), file=out)
    print("-+-".join("-" * width for width in widths), file=out)
    for line in table[1:]:
        print(render(line).rstrip(), file=out)


def cli(description: str, main: Callable[[bool], list[Row]]) -> None:
    """Run one benchmark script from the command line: ``--quick`` for a smaller run."""
    parser = argparse.ArgumentParser(description=description.strip().splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller N and fewer rounds (seconds, not minutes)"
    )
    args = parser.parse_args()
    rows = main(args.quick)
    print()
    print_rows(rows)
