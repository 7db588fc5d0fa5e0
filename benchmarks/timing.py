"""Timing shared by the benchmark scripts: best of N runs of a function, in seconds."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(function: Callable[[], object], repeat: int, *, warm: bool = False) -> float:
    """The shortest of ``repeat`` timed calls (after one untimed call when ``warm``)."""
    if warm:
        function()  # warm up (page cache, lazy imports, dataset module resolution)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)
