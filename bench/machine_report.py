"""What every benchmark prints beside its figures: the machine, its load, its measured matmul peak, and FLOP counts.

`header()` is one block: the CPU (model, ISA flags, the ISA the kernels use, threads, torch — from
`vaecore.runtime.machine`, the fact's one home), the load average when the run starts, and the measured peak of a
large matrix product in the given dtype on this machine and thread count, so "how close to the hardware" a
figure is becomes a number: achieved GFLOP/s = FLOPs per image × images/s, against that peak.

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` (convolutions, transposed convolutions and matrix
products: the arithmetic that dominates; element-wise work is not counted, so the achieved figure is a slight
under-estimate of the work done).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import torch


def load() -> str:
    """The 1/5/15-minute load averages, e.g. 'load 3.1 / 2.9 / 2.5 on 2 CPUs'."""
    try:
        a, b, c = os.getloadavg()
    except OSError:
        return "load unknown"
    return f"load {a:.1f} / {b:.1f} / {c:.1f} on {os.cpu_count()} CPUs"


def clock() -> tuple[Callable[[], float], str]:
    """(the clock benchmarks time with, its name): this process's CPU time when torch computes on one CPU thread
    (other processes' load then takes turns on the core without counting: robust on a shared machine), else wall
    time. CUDA timings are always wall time after a synchronize."""
    if torch.get_num_threads() == 1:
        return time.process_time, "CPU time of the process (1 thread: robust to other processes' load)"
    return time.perf_counter, "wall time"


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM; `ru_maxrss` can carry the parent's peak across fork+exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device: str | torch.device) -> None:
    """Wait for the device's queued work (CUDA timings are taken after it)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def matmul_peak_gflops(dtype: torch.dtype = torch.float32, device: str = "cpu", n: int | None = None,
                       seconds: float = 1.0) -> float:
    """Best GFLOP/s of an n×n matrix product (n = 1024 on the CPU, 8192 on CUDA) over about `seconds` of calls
    on this machine's current thread count: the practical peak a network's products are compared with."""
    cuda = torch.device(device).type == "cuda"
    n = n or (8192 if cuda else 1024)
    tick = time.perf_counter if cuda else clock()[0]
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, generator=g, device=device).to(dtype)
    b = torch.randn(n, n, generator=g, device=device).to(dtype)
    a @ b  # warm-up
    sync(device)
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds or best == float("inf"):
        t = tick()
        a @ b
        sync(device)
        best = min(best, tick() - t)
    return 2 * n**3 / best / 1e9


def flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of `fn` (convolutions and matrix products; backward included when `fn` runs it)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def header(dtype: torch.dtype = torch.float32, device: str = "cpu") -> tuple[str, float]:
    """(the lines to print first, the measured matmul peak in GFLOP/s)."""
    from vaecore.runtime import machine

    peak = matmul_peak_gflops(dtype, device)
    gpu = f"\nGPU: {torch.cuda.get_device_name()}" if torch.device(device).type == "cuda" else ""
    name = str(dtype).removeprefix("torch.")
    text = (f"machine: {machine.describe()}{gpu}\n{load()} at the start (other processes share the cores: figures "
            f"are compared only within this run, interleaved)\nmeasured matmul peak ({name}, "
            f"{'n=8192' if gpu else 'n=1024'}, {torch.get_num_threads()} thread(s)): {peak:.0f} GFLOP/s\n"
            f"timed by: {'wall time after torch.cuda.synchronize()' if gpu else clock()[1]}")
    return text, peak
