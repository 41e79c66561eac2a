"""What both peers share: a bundle's sessions and the few lines a minimal server needs, nothing of ``service``.

    m = PeerModel("models/mnist")
    latents = m.encode(m.image(png_bytes)[None])      # {"shape", "appearance", "class_code"}, each (B, D)
    outputs = m.decode(latents)                       # texture, grid, displacement, reconstruction, ...

Reads ``manifest.json`` with ``json`` (the peers run in their own virtualenv, without this project installed),
decodes with Pillow (L or RGB, BILINEAR to N × N, / 255: what the bundle's preprocessing says), runs the fused
``decoder`` graph when the bundle has one, else the three graphs, as a careful user would.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from bundle.layout import Arrays


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def npz_bytes(arrays: Arrays) -> bytes:
    buf = io.BytesIO()
    exact: dict[str, Any] = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
    np.savez(buf, **exact)
    return buf.getvalue()


class PeerModel:
    def __init__(self, bundle: str | Path, threads: int = 0) -> None:
        root = Path(bundle)
        self.manifest = json.loads((root / "manifest.json").read_text())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        graphs = self.manifest["graphs"]
        keys = ["encoder", "decoder"] if "decoder" in graphs else ["encoder", "texture", "deformation", "warp"]
        self.sessions = {
            k: ort.InferenceSession(str(root / graphs[k]["file"]), opts, providers=["CPUExecutionProvider"])
            for k in keys
        }
        self.size = int(self.manifest["image_size"])
        self.mode = self.manifest["preprocessing"]["color_mode"]

    def image(self, data: bytes) -> np.ndarray:
        im = Image.open(io.BytesIO(data)).convert(self.mode)
        if im.size != (self.size, self.size):
            im = im.resize((self.size, self.size), Image.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.float32) / np.float32(255.0)
        return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))

    def _run(self, key: str, bag: Arrays) -> Arrays:
        s = self.sessions[key]
        outs = s.run(None, {i.name: bag[i.name] for i in s.get_inputs()})
        return dict(zip([o.name for o in s.get_outputs()], outs, strict=True))

    def encode(self, images: np.ndarray) -> Arrays:
        out = self._run("encoder", {"image": images})
        if "class_logits" in out:
            out["class_code"] = softmax(out.pop("class_logits"))
        return out

    def decode(self, latents: Arrays) -> Arrays:
        bag = dict(latents)
        for key in [k for k in self.sessions if k != "encoder"]:
            bag.update(self._run(key, bag))
        return {k: v for k, v in bag.items() if k not in latents}

    def reconstruct_npz(self, latents: Arrays, outputs: Arrays) -> bytes:
        """The arrays /reconstruct?format=npz returns (texture, reconstruction, grid, displacement + latents)."""
        keep: Arrays = {k: outputs[k] for k in ("texture", "reconstruction", "grid", "displacement") if k in outputs}
        return npz_bytes({**keep, **latents})

    def encode_items(self, latents: Arrays) -> list[dict[str, object]]:
        items: list[dict[str, object]] = []
        for i in range(len(latents["appearance"])):
            item: dict[str, object] = {
                "index": i,
                "shape": latents["shape"][i].tolist(),
                "appearance": latents["appearance"][i].tolist(),
            }
            if "class_code" in latents:
                p = latents["class_code"][i]
                item["class_probabilities"] = p.tolist()
                item["predicted_class"] = int(np.argmax(p))
            items.append(item)
        return items
