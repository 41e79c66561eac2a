"""The service's Prometheus text, read back: batches formed and histogram sums/counts (bench cells diff them)."""

from __future__ import annotations

import re


def parse_batches(metrics_text: str) -> dict[str, tuple[float, float]]:
    """``{queue: (batches, images)}`` from ``dae_batches_total`` and ``dae_batch_images_total``."""
    out: dict[str, list[float]] = {}
    for name, idx in (("dae_batches_total", 0), ("dae_batch_images_total", 1)):
        for m in re.finditer(rf'^{name}\{{queue="([^"]+)"\}} ([0-9.eE+-]+)$', metrics_text, re.MULTILINE):
            out.setdefault(m.group(1), [0.0, 0.0])[idx] = float(m.group(2))
    return {q: (v[0], v[1]) for q, v in out.items()}


def parse_histogram(metrics_text: str, name: str) -> dict[str, tuple[float, float]]:
    """``{label value: (sum, count)}`` of a one-label histogram such as ``dae_inference_seconds{stage}``."""
    out: dict[str, list[float]] = {}
    for suffix, idx in (("_sum", 0), ("_count", 1)):
        pattern = rf'^{name}{suffix}\{{[a-z_]+="([^"]+)"[^}}]*\}} ([0-9.eE+-]+)$'
        for m in re.finditer(pattern, metrics_text, re.MULTILINE):
            out.setdefault(m.group(1), [0.0, 0.0])[idx] += float(m.group(2))
    return {k: (v[0], v[1]) for k, v in out.items()}
