"""What machine this process computes on: the CPU, the instruction sets PyTorch and oneDNN may use, the threads,
the torch build. One home for that fact: the kernel cache is keyed by `signature()`, and every benchmark prints
`describe()` beside its figures.

The ISA is what the kernels will actually use, not only what the CPU has: `ATEN_CPU_CAPABILITY=avx2` caps
PyTorch's own vectorised kernels and `ONEDNN_MAX_CPU_ISA=AVX2` oneDNN's (convolutions, matrix products), so a
machine capped to AVX2 gets its own signature and its own measured kernel choices.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass

import torch

__all__ = ["ISA_ENV", "Machine", "cpu_flags", "current", "describe", "signature"]

ISA_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
"""Environment variables that cap the instruction sets the kernels use (part of the signature when set)."""
FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16",
         "amx_int8", "asimd", "sve")
"""The CPU flags that change which kernels are fast (reported when the CPU has them)."""


@dataclass(frozen=True)
class Machine:
    """The facts a measured kernel choice depends on."""

    cpu: str
    cpus: int
    flags: tuple[str, ...]
    isa: str
    isa_env: tuple[tuple[str, str], ...]
    threads: int
    torch: str

    def describe(self) -> str:
        """One line, e.g. 'AMD EPYC (25/17/1), 2 CPUs, flags avx2 fma avx512f …, kernels AVX512, 1 thread,
        torch 2.13.0+cpu'."""
        caps = "".join(f", {k}={v}" for k, v in self.isa_env)
        amx = "" if any(f.startswith("amx") for f in self.flags) or platform.machine() not in ("x86_64", "AMD64") \
            else " (no AMX)"
        return (f"{self.cpu}, {self.cpus} CPUs, flags {' '.join(self.flags) or 'none'}{amx}, kernels {self.isa}"
                f"{caps}, {self.threads} thread{'s' if self.threads != 1 else ''}, torch {self.torch}")

    def signature(self) -> str:
        """A short stable hash of every field: the key of this machine's cached kernel choices."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, tuple[str, ...]]:
    """(model name with family/model/stepping, flags) from /proc/cpuinfo; the platform's names elsewhere."""
    name, flags, ids = platform.processor() or platform.machine(), set(), []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError:
        return name, ()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and value:
            name = value
        elif key in ("cpu family", "model", "stepping") and len(ids) < 3:
            ids.append(value)
        elif key in ("flags", "Features"):
            flags.update(value.split())
        if key == "" and flags:  # the first processor's block is enough
            break
    if len(ids) == 3:
        name = f"{name} ({'/'.join(ids)})"
    return name, tuple(f for f in FLAGS if f in flags)


def cpu_flags() -> tuple[str, ...]:
    """The kernel-relevant flags (`FLAGS`) this CPU reports."""
    return _cpuinfo()[1]


def current() -> Machine:
    """This process's machine now (the thread count is read at each call: it may change)."""
    cpu, flags = _cpuinfo()
    isa = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "unknown"
    env = tuple((k, os.environ[k]) for k in ISA_ENV if os.environ.get(k))
    return Machine(cpu=cpu, cpus=os.cpu_count() or 1, flags=flags, isa=str(isa), isa_env=env,
                   threads=torch.get_num_threads(), torch=torch.__version__)


def describe() -> str:
    """`current().describe()`."""
    return current().describe()


def signature() -> str:
    """`current().signature()`."""
    return current().signature()
