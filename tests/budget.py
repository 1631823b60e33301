"""Wall-clock limits for what tests wait on: subprocesses, servers, pages, background jobs.

A limit only turns a hang into a failure; it must never fail a test because the machine is slow or busy.
CI runs on whatever machine it is given, maybe 2-3x slower than ours, maybe with other work on its cores.
So each limit is written as a generous cap for an idle 2-core reference machine (an AMD Zen 4, where the
waited-on work takes a fraction of the cap), and `seconds()` stretches it by how much slower this machine is
*right now*: the wall time of a fixed single-thread Python workload divided by its CPU time on the
reference machine (at least 1). It is re-measured at every call (about 50 ms), so load that arrives during
the session counts. `VAE_TEST_SLOWDOWN=<factor>` replaces the measurement.
"""

from __future__ import annotations

import os
import time

REFERENCE_SECONDS = 0.053  # _workload() on the reference machine: the least CPU time of 15 runs


def _workload() -> int:
    s = 0
    for i in range(1_000_000):
        s += i * i % 7
    return s


def slowdown() -> float:
    """How many times slower than the idle reference machine this one runs a single thread now (>= 1)."""
    forced = os.environ.get("VAE_TEST_SLOWDOWN")
    if forced:
        return max(1.0, float(forced))
    start = time.perf_counter()
    _workload()
    return max(1.0, (time.perf_counter() - start) / REFERENCE_SECONDS)


def seconds(reference: float) -> float:
    """The limit `reference` (seconds, for the idle reference machine) stretched to this machine now."""
    return reference * slowdown()


def ms(reference: float) -> float:
    """`seconds(reference)` in milliseconds (Playwright's unit)."""
    return 1000 * seconds(reference)
