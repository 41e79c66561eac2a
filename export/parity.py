"""onnxruntime vs PyTorch, graph by graph and end to end, and batched vs single-image results.

For each image set (random, real) and each batch size b (1, 7, 64; each a prefix of the same 64 images):

- ``onnx-vs-torch``: every graph is fed the *PyTorch* pipeline's own intermediate tensors, so an error in
  one graph cannot hide behind or compound with another; every output is compared;
- ``pipeline``: the ONNX graphs chained as the service chains them (class code = softmax of the logits,
  computed in numpy) against ``model.forward`` of the checkpoint;
- ``batch-vs-single``: each graph's batch-b outputs against the same rows run one image at a time in
  onnxruntime (b = 7, 64).

Tolerances (max abs difference): :data:`PARITY_TOL` = 1e-4 against PyTorch (the issue's bound) and
:data:`BATCH_TOL` between batched and single-image onnxruntime runs. Measured on CPU (torch 2.13, onnxruntime
1.32, default-width models with seeded-noise weights): worst onnx-vs-torch 8e-6 at 32 px, 2e-5 at 64 px,
7e-5 at 128 px, always in ``warp.reconstruction``; every other output stays under 3e-6. The cause is the
grid: the cumulative sum runs up to |Φ| ≈ 5 before the offset, where one float32 ulp is ~5e-7, and
GridSample multiplies a grid error by (N - 1) / 2 pixels times the texture's slope. A sharp-textured 128 px
model can therefore come close to 1e-4; that is float32, not an export bug (the other graphs show it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor

from bundle.layout import Arrays, GraphLayout
from export.graphs import build_graphs
from training.model import Model

PARITY_TOL = 1e-4
# onnxruntime's CPU kernels compute each image of a batch independently: batched and single-image results
# were bit-identical (max diff 0.0) for every variant at 32, 64 and 128 px, with 1 or 2 threads. 1e-6 keeps
# the check meaningful ("equal") while not failing on a provider that reorders a sum.
BATCH_TOL = 1e-6
BATCHES: tuple[int, ...] = (1, 7, 64)


@dataclass(frozen=True)
class ParityRow:
    check: str  # "onnx-vs-torch" | "pipeline" | "batch-vs-single" | "fused-vs-split"
    graph: str
    output: str
    inputs: str  # "random" | "real"
    batch: int
    max_abs_diff: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return bool(self.max_abs_diff < self.tolerance)  # NaN compares False: a NaN is a failure


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def torch_pipeline(model: Model, images: Tensor) -> dict[str, tuple[Arrays, Arrays]]:
    """Per graph: (inputs, outputs) as numpy, running the export wrappers in the service's order."""
    graphs = build_graphs(model)
    pool: dict[str, Tensor] = {"image": images}
    result: dict[str, tuple[Arrays, Arrays]] = {}
    with torch.no_grad():
        for key, g in graphs.items():  # pipeline order: encoder, texture, deformation, warp
            feeds = [pool[n] for n in g.layout.input_names]
            outs = g(*feeds)
            pool.update(zip(g.layout.output_names, outs, strict=True))
            if "class_logits" in pool and "class_code" not in pool:
                pool["class_code"] = torch.softmax(pool["class_logits"], dim=1)
            result[key] = (
                {n: t.numpy() for n, t in zip(g.layout.input_names, feeds, strict=True)},
                {n: t.numpy() for n, t in zip(g.layout.output_names, outs, strict=True)},
            )
    return result


def onnx_pipeline(
    sessions: dict[str, ort.InferenceSession], layouts: dict[str, GraphLayout], images: np.ndarray
) -> Arrays:
    """Chain the ONNX graphs the way the service does; returns every tensor produced, by name."""
    pool: Arrays = {"image": images}
    for key, lay in layouts.items():
        outs = sessions[key].run(lay.output_names, {n: pool[n] for n in lay.input_names})
        pool.update(zip(lay.output_names, outs, strict=True))
        if "class_logits" in pool and "class_code" not in pool:
            pool["class_code"] = _softmax(pool["class_logits"]).astype(np.float32)
    return pool


def compare(
    model: Model,
    sessions: dict[str, ort.InferenceSession],
    layouts: dict[str, GraphLayout],
    image_sets: dict[str, Tensor],
    *,
    batches: Sequence[int] = BATCHES,
    progress: Callable[[str], None] | None = None,
) -> list[ParityRow]:
    """Every parity row for these image sets (each holding at least ``max(batches)`` images)."""
    rows: list[ParityRow] = []
    final = "texture" if model.cfg.variant == "autoencoder" else "reconstruction"
    for set_name, images in image_sets.items():
        if images.shape[0] < max(batches):
            raise ValueError(f"{set_name}: {images.shape[0]} images, parity needs {max(batches)}")
        ref_full = torch_pipeline(model, images[: max(batches)])
        with torch.no_grad():
            forward = getattr(model(images[: max(batches)]), final).numpy()
        singles = _single_runs(sessions, layouts, ref_full, max(batches))
        for b in batches:
            ref = torch_pipeline(model, images[:b])  # PyTorch at batch b, not a slice of batch 64
            for key, lay in layouts.items():
                feeds, want = ref[key]
                got = sessions[key].run(lay.output_names, feeds)
                for name, g in zip(lay.output_names, got, strict=True):
                    rows.append(
                        ParityRow("onnx-vs-torch", key, name, set_name, b, _max_diff(g, want[name]), PARITY_TOL)
                    )
                if b > 1:  # the very inputs the single-image runs saw, so only the batching differs
                    batched = sessions[key].run(lay.output_names, {k: v[:b] for k, v in ref_full[key][0].items()})
                    for name, g in zip(lay.output_names, batched, strict=True):
                        rows.append(
                            ParityRow(
                                "batch-vs-single",
                                key,
                                name,
                                set_name,
                                b,
                                _max_diff(g, singles[key][name][:b]),
                                BATCH_TOL,
                            )
                        )
            if "decoder" in layouts:  # the fused graph against the three graphs it replaces, on the same latents
                rows += _fused_vs_split(sessions, layouts, ref["decoder"][0], set_name, b)
            chained = onnx_pipeline(sessions, layouts, images[:b].numpy())
            rows.append(
                ParityRow("pipeline", "all", final, set_name, b, _max_diff(chained[final], forward[:b]), PARITY_TOL)
            )
        if progress is not None:
            worst = max(r.max_abs_diff for r in rows if r.inputs == set_name)
            progress(f"parity on {set_name} inputs at batch {', '.join(map(str, batches))}: worst {worst:.2e}")
    return rows


def _fused_vs_split(
    sessions: dict[str, ort.InferenceSession], layouts: dict[str, GraphLayout], feeds: Arrays, set_name: str, b: int
) -> list[ParityRow]:
    lay = layouts["decoder"]
    fused = dict(zip(lay.output_names, sessions["decoder"].run(lay.output_names, feeds), strict=True))
    pool = dict(feeds)
    for key in ("texture", "deformation", "warp"):
        part = layouts[key]
        outs = sessions[key].run(part.output_names, {n: pool[n] for n in part.input_names})
        pool.update(zip(part.output_names, outs, strict=True))
    return [
        ParityRow("fused-vs-split", "decoder", name, set_name, b, _max_diff(fused[name], pool[name]), PARITY_TOL)
        for name in lay.output_names
    ]


def _single_runs(
    sessions: dict[str, ort.InferenceSession],
    layouts: dict[str, GraphLayout],
    ref: dict[str, tuple[Arrays, Arrays]],
    n: int,
) -> dict[str, Arrays]:
    """Each graph run one image at a time on the PyTorch pipeline's inputs; outputs stacked to (n, ...)."""
    out: dict[str, Arrays] = {}
    for key, lay in layouts.items():
        feeds = ref[key][0]
        runs = [sessions[key].run(lay.output_names, {k: v[i : i + 1] for k, v in feeds.items()}) for i in range(n)]
        out[key] = {name: np.concatenate([r[j] for r in runs]) for j, name in enumerate(lay.output_names)}
    return out


def format_table(rows: Sequence[ParityRow]) -> str:
    """A fixed-width table: check, graph, output, inputs, batch, max abs diff, tolerance, ok."""
    head = f"{'check':<16} {'graph':<12} {'output':<15} {'inputs':<7} {'batch':>5} {'max abs diff':>12} {'tol':>7}  ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.check:<16} {r.graph:<12} {r.output:<15} {r.inputs:<7} {r.batch:>5} "
            f"{r.max_abs_diff:>12.3e} {r.tolerance:>7.0e}  {'yes' if r.ok else 'NO'}"
        )
    return "\n".join(lines)
