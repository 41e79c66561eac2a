"""Write one wrapper module to a single-file ONNX graph and check it against its layout.

Uses the TorchScript exporter (``dynamo=False``): it traces the wrapper once, gives every input and output a
dynamic axis 0 named ``"batch"`` and exact static shapes for the rest, and keeps the weights inside the
``.onnx`` file. The dynamo exporter works too (design notes §7) but needs ``external_data=False`` to stay
single-file, takes several times longer, and buys nothing for graphs this plain.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn
from torch.jit._trace import TracerWarning  # torch.jit re-exports it without listing it (mypy --strict)

from bundle.layout import GraphLayout
from export.errors import ExportError

MIN_OPSET = 16  # GridSample (the warp) first appears in opset 16
TRACE_BATCH = 2  # any size > 1 works; 1 would let the tracer specialise broadcasting to the batch axis


@dataclass(frozen=True)
class WrittenGraph:
    key: str
    path: Path
    bytes: int
    seconds: float


def _example_inputs(layout: GraphLayout, batch: int) -> tuple[torch.Tensor, ...]:
    # Values in (0, 1): every graph input is an image, a sigmoid latent, a probability code or an increment.
    gen = torch.Generator().manual_seed(0)
    return tuple(torch.rand((batch, *shape), generator=gen) for _, shape in layout.inputs)


def write_graph(module: nn.Module, layout: GraphLayout, path: Path, *, opset: int) -> WrittenGraph:
    """Export ``module`` (an :mod:`export.graphs` wrapper) to ``path``; ExportError on any mismatch."""
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old: the warp's GridSample needs opset >= {MIN_OPSET}")
    args = _example_inputs(layout, TRACE_BATCH)
    with torch.no_grad():
        out = module(*args)
    for (name, shape), t in zip(layout.outputs, out, strict=True):
        if tuple(t.shape) != (TRACE_BATCH, *shape):
            raise ExportError(
                f"{layout.key}: torch output {name!r} has shape {tuple(t.shape)[1:]}, layout expects {shape}"
            )
    names = layout.input_names + layout.output_names
    start = time.perf_counter()
    with warnings.catch_warnings():
        # The legacy exporter announces its own deprecation on every call; it is our deliberate choice.
        warnings.filterwarnings(
            "ignore", message=r".*legacy TorchScript-based ONNX export", category=DeprecationWarning
        )
        warnings.filterwarnings("ignore", message=r"The feature will be removed", category=DeprecationWarning)
        # InstanceNorm(affine=False, track_running_stats=False) always normalises with the input's own
        # statistics, in eval too; "train=True" is the correct export of that, not a training-mode leak.
        warnings.filterwarnings(
            "ignore", message=r".*operator 'instance_norm' is set to train=True", category=UserWarning
        )
        # torch installs this filter at import (TracerWarning.ignore_lib_warnings): tracer warnings raised in
        # torch's own library code (e.g. InstanceNorm's spatial-size check) are noise. pytest and any caller's
        # catch_warnings() drop it, so restore it here; tracer warnings from *our* code still surface.
        warnings.filterwarnings("ignore", category=TracerWarning, module=r"torch\.(?!jit)")
        try:
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=layout.input_names,
                output_names=layout.output_names,
                dynamic_axes={n: {0: "batch"} for n in names},
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
        except Exception as e:  # the exporter raises many types; name the graph and keep the cause
            raise ExportError(f"{layout.key}: torch.onnx.export failed: {e}") from e
    seconds = time.perf_counter() - start
    check_written(path, layout, opset)
    return WrittenGraph(layout.key, path, path.stat().st_size, seconds)


def _shape(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in value.type.tensor_type.shape.dim]


def checked_model(path: Path, opset: int, source: str) -> onnx.ModelProto:
    """The one file check of the exporter and of ``verify_bundle``: onnx.checker (full check, strict shape
    inference) accepts ``path`` and its default-domain opset is ``opset`` (what ``source`` says). Returns the
    loaded model; ``ValueError`` naming the problem, which each caller wraps in its own error type."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:  # onnx raises ValidationError or InferenceError
        raise ValueError(f"onnx.checker rejects {path.name}: {e}") from e
    model = onnx.load(str(path), load_external_data=False)
    got = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if got != opset:
        raise ValueError(f"{path.name} uses opset {got}, {source} says {opset}")
    return model


def check_written(path: Path, layout: GraphLayout, opset: int) -> None:
    """onnx.checker (with strict shape inference), opset, single file, and I/O exactly as in the layout."""
    try:
        model = checked_model(path, opset, "the export")
    except ValueError as e:
        raise ExportError(str(e)) from e
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise ExportError(f"{path.name}: weights were written to external data; bundles are single-file")
    float32 = onnx.TensorProto.FLOAT
    for side, values, want in (
        ("input", model.graph.input, layout.inputs),
        ("output", model.graph.output, layout.outputs),
    ):
        got = [(v.name, _shape(v), v.type.tensor_type.elem_type) for v in values]
        expected = [(n, ["batch", *s], float32) for n, s in want]
        if got != expected:
            raise ExportError(f"{path.name}: {side}s are {got}, layout expects {expected} (elem type 1 = float32)")
