"""Timing two ways of computing the same thing, to keep the faster: the measuring behind every kernel and
memory-format choice (`conv_autotune`, `layout`).

Each way gets a warm-up call (first-call allocations, oneDNN's primitive creation), then interleaved timed
rounds keep each one's best time. Rounds stop as soon as the choice cannot flip on timing noise: when the
challenger's time over the baseline's is more than `SETTLED` away from the decision's margin, else after
`REPEATS` rounds. With one torch thread the clock is this thread's CPU time, so other processes' load does not
decide (wall time otherwise).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

__all__ = ["REPEATS", "SETTLED", "best_times", "timer"]

REPEATS = 3  # timed rounds at most
SETTLED = 0.15  # a round decides when challenger / baseline is more than this fraction away from the margin
# (one-thread CPU time repeats within a few per cent; before, only a 2x difference ended the rounds early)


def timer() -> Callable[[], float]:
    """This thread's CPU time when torch computes on this thread alone (robust to other processes' load),
    else wall time."""
    return time.thread_time if torch.get_num_threads() == 1 else time.perf_counter


def best_times(calls: dict[str, Callable[[], object]], challenger: str, baseline: str, margin: float,
               before: Callable[[str], object] = lambda name: None) -> dict[str, float]:
    """Best seconds of each of `calls` (a warm-up call each, then up to `REPEATS` interleaved rounds), where
    `challenger` is to be chosen over `baseline` when it takes at most `margin` of its time; `before(name)` runs
    untimed before each call (e.g. to switch the memory format)."""
    clock = timer()
    for name, call in calls.items():
        before(name)
        call()
    best = dict.fromkeys(calls, math.inf)
    for _ in range(REPEATS):
        for name, call in calls.items():
            before(name)
            t = clock()
            call()
            best[name] = min(best[name], clock() - t)
        if abs(best[challenger] / max(best[baseline], 1e-12) / margin - 1) > SETTLED:
            break
    return best
