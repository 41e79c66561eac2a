"""The DAE pipeline on numpy arrays, batched: encode → class code → texture + deformation → warp.

    encode({"image": (B, C, N, N)})  -> shape (B, S), appearance (B, A) [, shading_latent]
                                        [, class_logits, class_code = softmax(class_logits)]
    decode({"shape", "appearance" [, "shading_latent"] [, "class_code" (B, K)]})
        -> texture (B, C, N, N) [, albedo, shading], increments (B, 2, N, N) [, affine (B, 6)],
           grid, displacement (B, 2, N, N), reconstruction (B, C, N, N)

The class code a class-aware model's decoders read is ``softmax(class_logits)`` (what the trainer's
forward does without labels) or the one-hot of a chosen class. For the plain autoencoder the texture is
the reconstruction.
Both functions return the per-stage seconds too (metrics and Server-Timing).

A bundle with the fused ``decoder`` graph (texture + deformation + warp in one ONNX graph, see
``export/graphs.py``) decodes in one ``session.run`` (stage ``decoder``); older bundles run the three graphs
(stages ``texture``, ``deformation``, ``warp``), with the same outputs.
"""

from __future__ import annotations

import time

import numpy as np

from bundle.layout import Arrays
from service.runtime import Runtime


def softmax(logits: np.ndarray) -> np.ndarray:
    # In place on one float64 copy (the same operations in the same order as the bench's reference, so the
    # same bits): fewer temporaries on a path that runs once per batch.
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    out: np.ndarray = z.astype(np.float32)
    return out


def one_hot(index: int, k: int, rows: int = 1) -> np.ndarray:
    out = np.zeros((rows, k), np.float32)
    out[:, index] = 1.0
    return out


class Pipeline:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.manifest = runtime.manifest
        self.has_warp = "warp" in runtime.sessions or "decoder" in runtime.sessions
        self.fused = runtime.fused

    def encode(self, inputs: Arrays) -> tuple[Arrays, dict[str, float]]:
        t0 = time.perf_counter()
        out = self.runtime.run("encoder", inputs)
        if "class_logits" in out:  # what class-aware decoders read: once per batch here, not per request
            out["class_code"] = softmax(out["class_logits"])
        return out, {"encoder": time.perf_counter() - t0}

    def decode(self, inputs: Arrays) -> tuple[Arrays, dict[str, float]]:
        if self.fused:
            t0 = time.perf_counter()
            out = self.runtime.run("decoder", inputs)
            return out, {"decoder": time.perf_counter() - t0}
        stages: dict[str, float] = {}
        bag = dict(inputs)
        for key in ("texture", "deformation", "warp"):
            if key not in self.runtime.sessions:
                continue
            t0 = time.perf_counter()
            bag.update(self.runtime.run(key, bag))
            stages[key] = time.perf_counter() - t0
        if not self.has_warp:
            bag["reconstruction"] = bag["texture"]
        for name in inputs:  # outputs only: the caller already has its inputs
            bag.pop(name, None)
        return bag, stages

    def warm_up(self, max_batch: int) -> float:
        """Run every graph at batch 1 and at ``max_batch`` (first calls allocate, search algorithms)."""
        t0 = time.perf_counter()
        m = self.manifest
        for b in sorted({1, max_batch}):
            image = np.zeros((b, m.channels, m.image_size, m.image_size), np.float32)
            latents, _ = self.encode({"image": image})
            self.decode(latents)  # reads the inputs it has by name: class_logits stays unread
        return time.perf_counter() - t0
