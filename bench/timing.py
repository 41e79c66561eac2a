"""Timing helpers shared by every benchmark: interleaved timing, percentiles, a description of the machine.

Why interleave: on a shared machine the speed available to us drifts by tens of percent within a minute.
Timing side A for a minute and then side B for a minute measures the drift as much as the difference. Instead,
:func:`interleaved` runs the sides in short alternating slices (A B B A A B ...) and keeps every call's time,
so both sides see the same noise and a ratio of their medians is meaningful.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Budget:
    """How long to time one side of a comparison: ``rounds`` slices, each ``slice_s`` and >= ``min_calls``."""

    rounds: int = 4
    slice_s: float = 0.25
    min_calls: int = 2

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.min_calls < 1 or self.slice_s < 0:
            raise ValueError(f"invalid budget {self}")


DEFAULT_BUDGET = Budget()


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in [0, 100]; NaN for an empty sequence."""
    if not values:
        return float("nan")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50.0)


def interleaved(
    fns: Mapping[str, Callable[[], object]], budget: Budget = DEFAULT_BUDGET, warmup: int = 1
) -> dict[str, list[float]]:
    """Per-call wall times (seconds) of each function, timed in alternating slices.

    Each function is called ``warmup`` times untimed first (allocator and thread-pool start-up, lazy
    initialisation), then ``budget.rounds`` times for a slice; the order of the sides is reversed every round
    so neither always runs right after the other.
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(budget.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn = fns[name]
            start = time.perf_counter()
            calls = 0
            while calls < budget.min_calls or time.perf_counter() - start < budget.slice_s:
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
                calls += 1
    return times


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / (1024 * 1024)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on (stated at the top of the report)."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "gpu": "none (CPU only)",
    }
    for module in ("torch", "onnxruntime", "numpy", "fastapi", "uvicorn"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info
