"""The model in process: exported graphs under onnxruntime vs the same network in PyTorch eager.

    python -m bench.model_bench --sizes 32 64 --batches 1 4 16 64 256

Paths timed (B = batch): ``encode`` (encoder graph), ``decode`` (texture + deformation graphs), ``warp``
(the warp graph) and ``reconstruct`` (all four chained, as the service's /reconstruct runs them). The eager
side runs :func:`export.graphs.build_graphs`' wrappers, the very modules that were exported, under
``torch.inference_mode()``. Both sides get the same intra-op thread count and the same input arrays, and are
timed in alternating slices (:func:`bench.timing.interleaved`).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from bench.bundles import bundle_for, eager_model
from bench.timing import DEFAULT_BUDGET, Budget, interleaved, median, percentile
from bundle.layout import Arrays
from export.graphs import build_graphs

PATHS = ("encode", "decode", "warp", "reconstruct")


@dataclass(frozen=True)
class ModelRow:
    path: str
    image_size: int
    batch: int
    backend: str  # "onnxruntime" | "torch"
    p50_ms: float
    p95_ms: float
    images_per_s: float
    calls: int


def ort_sessions(bundle: Path, threads: int) -> dict[str, ort.InferenceSession]:
    """One CPU session per graph file, with the thread settings the service uses on CPU."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads would steal the cores from whatever runs next (here: the eager side, in the service:
    # image decoding and the event loop), so the pool sleeps between calls, as the service configures it.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return {
        key: ort.InferenceSession(str(bundle / f"{key}.onnx"), opts, providers=["CPUExecutionProvider"])
        for key in ("encoder", "texture", "deformation", "warp")
    }


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


class OrtPipeline:
    """Runs the bundle's graphs by name, wiring each graph's inputs from what earlier graphs produced."""

    def __init__(self, sessions: dict[str, ort.InferenceSession]) -> None:
        self.sessions = sessions
        self.inputs = {k: [i.name for i in s.get_inputs()] for k, s in sessions.items()}
        self.outputs = {k: [o.name for o in s.get_outputs()] for k, s in sessions.items()}

    def run(self, key: str, values: Arrays) -> Arrays:
        if "class_code" in self.inputs[key] and "class_code" not in values:
            values["class_code"] = _softmax(values["class_logits"])  # what the service feeds at inference
        feeds = {name: values[name] for name in self.inputs[key]}
        return dict(zip(self.outputs[key], self.sessions[key].run(None, feeds), strict=True))

    def path(self, name: str, values: Arrays) -> Arrays:
        if name == "encode":
            return self.run("encoder", values)
        if name == "decode":
            return self.run("texture", values) | self.run("deformation", values)
        if name == "warp":
            return self.run("warp", values)
        v = dict(values)
        v |= self.run("encoder", v)
        v |= self.run("texture", v)
        v |= self.run("deformation", v)
        return v | self.run("warp", v)


def inputs_for(pipe: OrtPipeline, image_size: int, batch: int) -> Arrays:
    """Every tensor any path starts from, for batch ``batch`` (computed once, outside the timed region)."""
    rng = np.random.default_rng(0)
    values: Arrays = {"image": rng.random((batch, 1, image_size, image_size), dtype=np.float32)}
    values |= pipe.run("encoder", dict(values))
    values |= pipe.run("texture", dict(values))
    values |= pipe.run("deformation", dict(values))
    return values


def torch_path(graphs: Mapping[str, torch.nn.Module], name: str, t: dict[str, torch.Tensor]) -> None:
    """The eager twin of :meth:`OrtPipeline.path` (dae variant: no class code)."""
    enc, tex, dfm, wrp = graphs["encoder"], graphs["texture"], graphs["deformation"], graphs["warp"]
    with torch.inference_mode():
        if name == "encode":
            enc(t["image"])
        elif name == "decode":
            tex(t["appearance"])
            dfm(t["shape"])
        elif name == "warp":
            wrp(t["increments"], t["texture"])
        else:
            shape, appearance = enc(t["image"])[:2]
            texture = tex(appearance)[0]
            increments = dfm(shape)[0]
            wrp(increments, texture)


def bench_model(
    sizes: tuple[int, ...],
    batches: tuple[int, ...],
    root: Path,
    budget: Budget = DEFAULT_BUDGET,
    threads: int | None = None,
    paths: tuple[str, ...] = PATHS,
) -> list[ModelRow]:
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    rows: list[ModelRow] = []
    for size in sizes:
        pipe = OrtPipeline(ort_sessions(bundle_for(size, root), threads))
        graphs = build_graphs(eager_model(size, root))
        for batch in batches:
            values = inputs_for(pipe, size, batch)
            tensors = {k: torch.from_numpy(v) for k, v in values.items()}
            for name in paths:
                fns: dict[str, Callable[[], object]] = {
                    "onnxruntime": partial(pipe.path, name, values),
                    "torch": partial(torch_path, graphs, name, tensors),
                }
                times = interleaved(fns, budget)
                for backend, ts in times.items():
                    rows.append(
                        ModelRow(
                            name,
                            size,
                            batch,
                            backend,
                            median(ts) * 1e3,
                            percentile(ts, 95) * 1e3,
                            batch / median(ts),
                            len(ts),
                        )
                    )
    return rows


def to_json(rows: list[ModelRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64], help="image sizes (default: 32 64)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64, 256], help="(default: 1 4 16 64 256)")
    p.add_argument("--root", type=Path, default=Path("build/bench/bundles"), help="bundle cache folder")
    p.add_argument("--slice-s", type=float, default=0.25, help="seconds per slice (default: 0.25)")
    args = p.parse_args(argv)
    rows = bench_model(tuple(args.sizes), tuple(args.batches), args.root, Budget(4, args.slice_s, 2))
    print(json.dumps(to_json(rows), indent=2))


if __name__ == "__main__":
    main()
