"""What the benchmark scripts share: a header, a timer, medians of repeated runs, percentiles and tables.

Each script imports it as a sibling (`import harness`): Python puts a script's own folder on sys.path.
"""

from __future__ import annotations

import datetime
import functools
import math
import os
import platform
import statistics
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"  # the evaluation sets, beside the repository


def header(name: str, *versions: str) -> None:
    """The first lines of every benchmark's output: what ran, when, on what machine, under what load."""
    print(f"{name}  {datetime.datetime.now().isoformat(timespec='seconds')}")
    machine = [platform.platform(), f"{os.cpu_count()} cores", f"Python {platform.python_version()}"]
    print(" · ".join([*machine, *versions]))
    print(f"load average {os.getloadavg()} (shared machines are noisy: read medians and ratios)")


@dataclass
class Timing:
    wall: float = 0.0  # seconds
    cpu: float = 0.0  # process CPU seconds, all threads (steadier than wall under load)


@contextmanager
def timer() -> Iterator[Timing]:
    """`with timer() as t: ...`; then t.wall and t.cpu hold the block's seconds."""
    timing = Timing()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield timing
    finally:
        timing.wall, timing.cpu = time.perf_counter() - wall, time.process_time() - cpu


def timed(fn: Callable[[], T]) -> tuple[T, Timing]:
    with timer() as timing:
        result = fn()
    return result, timing


def median_of(runs: int, fn: Callable[[], T]) -> tuple[T, Timing]:
    """Call fn `runs` times: its first result, and the median wall and CPU seconds of the calls."""
    calls = [timed(fn) for _ in range(max(1, runs))]
    return calls[0][0], Timing(median([t.wall for _, t in calls]), median([t.cpu for _, t in calls]))


def latencies_ms(fn: Callable[[T], object], items: Sequence[T], rounds: int = 1) -> list[float]:
    """Milliseconds of fn(item) for every item, `rounds` times over."""
    return [timed(functools.partial(fn, item))[1].wall * 1000 for _ in range(rounds) for item in items]


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def percentile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(xs)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def cell(v: object) -> str:
    """Numbers to about three significant figures; NaN (not measured) as '-'."""
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return str(v)


def table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], title: str = "", fmt: Callable[[object], str] = cell
) -> None:
    """Print an aligned table: numbers right-aligned, text left, CJK two columns wide."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(width(h), *(width(r[i]) for r in cells)) if cells else width(h) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r[i], int | float) or r[i] in ("", "-") for r in rows) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        out = []
        for c, w, n in zip(row, widths, numeric, strict=True):
            pad = " " * (w - width(c))
            out.append(pad + c if n else c + pad)
        return "  ".join(out).rstrip()

    if title:
        print(f"\n{title}")
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print(line(r))


def width(s: str) -> int:
    """Display width: CJK (wide/full-width) characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)
