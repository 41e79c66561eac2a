"""The five targets of the benchmark issue, each evaluated as a ratio of two numbers from the same run.

Every function takes the run's result dict (see :func:`bench.__main__.run`) and returns :class:`Target` rows.
The in-process side of a comparison is always the 32×32 bundle the service serves, so "the same work" means
the same graphs on the same weights; only HTTP, image codecs, batching and the event loop differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Result = dict[str, Any]
ON_MODES = ("on", "on-wait2")  # the modes of bench.service_bench.MODES that batch


@dataclass(frozen=True)
class Target:
    name: str  # the target as the issue states it
    case: str  # which measurement
    measured: str  # the two numbers compared
    ratio: float
    threshold: float
    higher_is_better: bool = True
    unit: str = "×"

    @property
    def met(self) -> bool:
        if math.isnan(self.ratio):
            return False
        return self.ratio >= self.threshold if self.higher_is_better else self.ratio <= self.threshold


def _model(result: Result, path: str, size: int, backend: str) -> list[dict[str, Any]]:
    return [r for r in result["model"] if r["path"] == path and r["image_size"] == size and r["backend"] == backend]


def _service(result: Result, endpoint: str, batching: str, clients: int) -> list[dict[str, Any]]:
    return [
        r
        for r in result["service"]["rows"]
        if r["endpoint"] == endpoint and r["batching"] == batching and r["clients"] == clients
    ]


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")


def throughput_vs_in_process(result: Result) -> list[Target]:
    """Service images/s at 64 clients (batching on) ≥ 70 % of in-process onnxruntime's best images/s."""
    out = []
    size = result["service"]["image_size"]
    top = max(result["service"]["settings"]["clients"])
    for endpoint in ("encode", "reconstruct"):
        best = max(_model(result, endpoint, size, "onnxruntime"), key=lambda r: r["images_per_s"], default=None)
        for row in [r for mode in ON_MODES for r in _service(result, endpoint, mode, top)]:
            if best is None:
                continue
            out.append(
                Target(
                    "service throughput at 64 clients ≥ 70 % of in-process onnxruntime's best",
                    f"/{endpoint}, {top} clients, {row['images_per_request']} image(s)/request, "
                    f"batching {row['batching']}",
                    f"{row['images_per_s']:.0f} vs {best['images_per_s']:.0f} img/s "
                    f"(in process at batch {best['batch']})",
                    _ratio(row["images_per_s"], best["images_per_s"]),
                    0.70,
                    unit="",
                )
            )
    return out


def latency_vs_in_process(result: Result) -> list[Target]:
    """Service p50 at 1 client ≤ in-process batch-1 p50 + 3 ms (the ratio here is the difference, in ms)."""
    out = []
    size = result["service"]["image_size"]
    for endpoint in ("encode", "reconstruct"):
        base = [r for r in _model(result, endpoint, size, "onnxruntime") if r["batch"] == 1]
        if not base:
            continue
        for mode in (*ON_MODES, "off"):
            for row in _service(result, endpoint, mode, 1):
                if row["images_per_request"] != 1:
                    continue
                out.append(
                    Target(
                        "service p50 at 1 client ≤ in-process batch-1 latency + 3 ms",
                        f"/{endpoint}, batching {mode}",
                        f"{row['p50_ms']:.2f} ms vs {base[0]['p50_ms']:.2f} ms in process",
                        row["p50_ms"] - base[0]["p50_ms"],
                        3.0,
                        higher_is_better=False,
                        unit=" ms",
                    )
                )
    return out


def onnxruntime_vs_eager(result: Result) -> list[Target]:
    """onnxruntime ≥ 1.5 × PyTorch eager at batch 1, for every path and size measured."""
    out = []
    for row in result["model"]:
        if row["backend"] != "onnxruntime" or row["batch"] != 1:
            continue
        eager = _model(result, row["path"], row["image_size"], "torch")
        eager = [e for e in eager if e["batch"] == 1]
        if eager:
            out.append(
                Target(
                    "onnxruntime ≥ 1.5 × PyTorch eager at batch 1",
                    f"{row['path']}, {row['image_size']}×{row['image_size']}",
                    f"{row['p50_ms']:.2f} ms vs {eager[0]['p50_ms']:.2f} ms eager",
                    _ratio(eager[0]["p50_ms"], row["p50_ms"]),
                    1.5,
                )
            )
    return out


def batching_on_vs_off(result: Result, clients: int = 32) -> list[Target]:
    """Batching on ≥ 1.3 × batching off in images/s at 32 clients, one image per request."""
    out = []
    for endpoint, mode in ((e, m) for e in ("encode", "reconstruct") for m in ON_MODES):
        on = [r for r in _service(result, endpoint, mode, clients) if r["images_per_request"] == 1]
        off = [r for r in _service(result, endpoint, "off", clients) if r["images_per_request"] == 1]
        if on and off:
            out.append(
                Target(
                    "batching on ≥ 1.3 × batching off at 32 clients on CPU",
                    f"/{endpoint}, {clients} clients, batching {mode}, 1 image/request, "
                    f"avg batch {on[0]['avg_batch'].get('encode', float('nan')):.1f}",
                    f"{on[0]['images_per_s']:.0f} vs {off[0]['images_per_s']:.0f} img/s",
                    _ratio(on[0]["images_per_s"], off[0]["images_per_s"]),
                    1.3,
                )
            )
    return out


def memory_flat(result: Result, tolerance: float = 0.05) -> list[Target]:
    """RSS of the last quarter of the sustained run ≤ (1 + 5 %) × that of the first quarter."""
    m = result["service"]["memory"]
    return [
        Target(
            "server memory flat under sustained load",
            f"{m['seconds']:.0f} s of /reconstruct, {m['clients']} clients × {m['images_per_request']} images",
            f"{m['first_quarter_mib']:.1f} → {m['last_quarter_mib']:.1f} MiB "
            f"(slope {m['slope_mib_per_min']:+.2f} MiB/min)",
            _ratio(m["last_quarter_mib"], m["first_quarter_mib"]),
            1.0 + tolerance,
            higher_is_better=False,
        )
    ]


def all_targets(result: Result) -> list[Target]:
    targets = []
    if result.get("service") and result.get("model"):
        targets += throughput_vs_in_process(result) + latency_vs_in_process(result)
    if result.get("model"):
        targets += onnxruntime_vs_eager(result)
    if result.get("service"):
        clients = result["service"]["settings"]["clients"]
        targets += batching_on_vs_off(result, 32 if 32 in clients else max(clients))
        targets += memory_flat(result)
    return targets
