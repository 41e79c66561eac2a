"""An exported ONNX bundle behind the trainer's model interface, so evaluation measures what is served.

    model = BundleModel("models/mnist")          # onnxruntime on the CPU; checksums verified
    metrics = evaluate(model, dataset)           # the same metrics as for a checkpoint

The service runs the same graphs; evaluating them (not the checkpoint they came from) is what makes
``python -m training evaluate --bundle models/mnist`` a statement about the served model. Needs onnxruntime
(the ``cpu`` or ``gpu`` extra); imported lazily so training alone does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bundle.manifest import Manifest, load_manifest, verify_checksums
from training.config import ModelConfig, WarpConstants
from training.model import LatentModel, Latents, Output


def model_config(manifest: Manifest) -> ModelConfig:
    """The architecture facts a bundle's manifest states (enough for evaluation; no weights)."""
    warp = manifest.warp
    return ModelConfig(
        variant=manifest.variant,
        image_size=manifest.image_size,
        channels=manifest.channels,
        appearance_dim=max(manifest.latent_size("appearance"), 1),
        shape_dim=max(manifest.latent_size("shape"), 1),
        shading_dim=max(manifest.latent_size("shading_latent"), 1),
        num_classes=max(manifest.num_classes, 1),
        warp="affine+integral" if warp is not None and warp.affine else "integral",
        warp_constants=WarpConstants(warp.increment_scale, warp.offset, warp.clamp) if warp else WarpConstants(),
        class_names=tuple(manifest.class_names),
    )


class BundleModel(LatentModel):
    """encode/decode through onnxruntime sessions of a bundle's encoder, texture, deformation and warp graphs."""

    def __init__(self, bundle_dir: str | Path) -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - the train extra alone lacks it
            raise ValueError("evaluating a bundle needs onnxruntime: pip install '.[cpu]'") from e
        root = Path(bundle_dir)
        self.manifest = load_manifest(root)
        verify_checksums(root, self.manifest)
        self.cfg = model_config(self.manifest)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.sessions = {
            key: ort.InferenceSession(str(root / spec.file), opts, providers=["CPUExecutionProvider"])
            for key, spec in self.manifest.graphs.items()
            if key in ("encoder", "texture", "deformation", "warp")
        }

    def _run(self, key: str, feeds: dict[str, Tensor | None]) -> dict[str, Tensor]:
        spec = self.manifest.graphs[key]
        inputs = {t.name: _np(feeds[t.name]) for t in spec.inputs}
        values = self.sessions[key].run([t.name for t in spec.outputs], inputs)
        return {t.name: torch.from_numpy(np.asarray(v)) for t, v in zip(spec.outputs, values, strict=True)}

    def encode(self, x: Tensor) -> Latents:
        out = self._run("encoder", {"image": x})
        app = out["appearance"]
        return Latents(
            shape=out.get("shape", app[:, :0]),
            appearance=app,
            shading=out.get("shading_latent"),
            class_logits=out.get("class_logits"),
        )

    def class_code(
        self, latents: Latents, labels: Tensor | None = None, class_override: Tensor | None = None
    ) -> Tensor | None:
        if latents.class_logits is None:
            return None
        chosen = class_override if class_override is not None else labels
        if chosen is not None:
            k = self.cfg.num_classes
            return torch.nn.functional.one_hot(chosen.long(), k).float() if chosen.dim() == 1 else chosen.float()
        return torch.softmax(latents.class_logits, dim=1)

    def decode_texture(self, latents: Latents, code: Tensor | None) -> dict[str, Tensor]:
        return self._run(
            "texture", {"appearance": latents.appearance, "shading_latent": latents.shading, "class_code": code}
        )

    def decode(self, latents: Latents, code: Tensor | None = None) -> Output:
        tex = self.decode_texture(latents, code)
        if not self.cfg.has_warp:
            return Output(latents=latents, texture=tex["texture"], reconstruction=tex["texture"])
        deform = self._run("deformation", {"shape": latents.shape, "class_code": code})
        warped = self._run(
            "warp", {"increments": deform["increments"], "texture": tex["texture"], "affine": deform.get("affine")}
        )
        return Output(
            latents=latents,
            texture=tex["texture"],
            reconstruction=warped["reconstruction"],
            increments=deform["increments"],
            grid=warped["grid"],
            affine=deform.get("affine"),
            albedo=tex.get("albedo"),
            shading=tex.get("shading"),
        )

    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        return {"encoder": [], "texture": [], "deformation": []}

    def to(self, *args: Any, **kwargs: Any) -> BundleModel:  # the sessions live on the CPU
        return self


def _np(t: Tensor | None) -> np.ndarray:
    if t is None:
        raise ValueError("the bundle's graph needs an input the model did not produce")
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)


__all__ = ["BundleModel", "model_config"]
