"""Thin ``nn.Module`` wrappers that expose the trainer's own code paths as the bundle's graphs (four, plus the
fused ``decoder``: texture + deformation + warp in one graph).

Each wrapper holds the trained model and calls *its* methods (``model.encode``, ``model.decode_texture``,
``model.decode_deformation``, ``model.warper``), so a change to the model changes the export with it; nothing
here re-implements a layer. Inputs and outputs are positional and ordered as in :mod:`bundle.layout`.

The class code of a class-aware model is an explicit ``(B, K)`` input of both decoders: the trainer feeds a
label's one-hot, the service feeds ``softmax(class_logits)`` (what ``model.forward`` does without labels) or a
one-hot of a chosen class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from bundle.layout import GraphLayout, Sizes, graph_layout
from export.errors import ExportError
from training.checkpoint import load_model
from training.config import ModelConfig
from training.model import Latents, Model


def load_checkpoint(path: Path) -> tuple[Model, dict[str, Any]]:
    """``training.checkpoint.load_model`` (eval mode), with any failure to read it as one ExportError."""
    try:
        return load_model(path)
    except Exception as e:  # missing file, not a zip/pickle, not ours, weights that do not fit the config...
        raise ExportError(f"cannot load checkpoint {path}: {e}") from e


def sizes_of(cfg: ModelConfig) -> Sizes:
    """The layout numbers of a model config (the autoencoder's one code counts as its appearance)."""
    if cfg.variant == "autoencoder":
        return Sizes("autoencoder", cfg.image_size, cfg.channels, appearance=cfg.total_latent_dim)
    return Sizes(
        cfg.variant,
        cfg.image_size,
        cfg.channels,
        appearance=cfg.appearance_dim,
        shape=cfg.shape_dim,
        shading=cfg.shading_dim if cfg.variant == "intrinsic" else 0,
        classes=cfg.num_classes if cfg.has_classes else 0,
        affine=cfg.warp == "affine+integral",
    )


class _Graph(nn.Module):
    """Maps positional inputs to names (the layout's order) and returns outputs in the layout's order."""

    def __init__(self, model: Model, layout: GraphLayout) -> None:
        super().__init__()
        self.model = model
        self.layout = layout

    def named(self, inputs: tuple[Tensor, ...]) -> dict[str, Tensor]:
        if len(inputs) != len(self.layout.inputs):
            raise TypeError(f"{self.layout.key} takes {self.layout.input_names}, got {len(inputs)} tensors")
        return dict(zip(self.layout.input_names, inputs, strict=True))

    def ordered(self, outputs: dict[str, Tensor | None]) -> tuple[Tensor, ...]:
        result = []
        for name in self.layout.output_names:
            t = outputs.get(name)
            if t is None:
                raise RuntimeError(f"model produced no {name!r} for graph {self.layout.key}")
            result.append(t)
        return tuple(result)


class EncoderGraph(_Graph):
    """image -> shape, appearance [, shading_latent] [, class_logits] via ``model.encode``."""

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        lat = self.model.encode(self.named(inputs)["image"])
        return self.ordered(
            {
                "shape": lat.shape,
                "appearance": lat.appearance,
                "shading_latent": lat.shading,
                "class_logits": lat.class_logits,
            }
        )


class TextureGraph(_Graph):
    """appearance [, shading_latent] [, class_code] -> texture [, albedo, shading] via ``decode_texture``."""

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        x = self.named(inputs)
        app = x["appearance"]
        # The texture decoders never read the shape latent; an empty one keeps Latents well-formed.
        lat = Latents(shape=app[:, :0], appearance=app, shading=x.get("shading_latent"))
        return self.ordered(dict(self.model.decode_texture(lat, x.get("class_code"))))


class DeformationGraph(_Graph):
    """shape [, class_code] -> increments [, affine] via ``decode_deformation``."""

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        x = self.named(inputs)
        lat = Latents(shape=x["shape"], appearance=x["shape"][:, :0])
        return self.ordered(dict(self.model.decode_deformation(lat, x.get("class_code"))))


class WarpGraph(_Graph):
    """increments, texture [, affine] -> grid, displacement, reconstruction: ``model.warper`` itself."""

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        x = self.named(inputs)
        grid, displacement, reconstruction = self.model.warp(x["increments"], x["texture"], x.get("affine"))
        return self.ordered({"grid": grid, "displacement": displacement, "reconstruction": reconstruction})


class DecoderGraph(_Graph):
    """texture + deformation + warp fused: the three wrappers above chained inside one graph.

    The same code paths as the separate graphs (this holds no layer of its own), so the fused graph cannot
    drift from them; the service runs it once per decode batch instead of three sessions, and on a GPU the
    texture and the grid never leave the device between stages.
    """

    def __init__(self, model: Model, layout: GraphLayout) -> None:
        super().__init__(model, layout)
        lay = graph_layout(sizes_of(model.cfg))
        # A plain list, not a ModuleList: the parts share self.model, whose weights are registered once.
        self.parts: list[_Graph] = [cls(model, lay[key]) for key, cls in _SPLIT]

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        pool = self.named(inputs)
        for part in self.parts:
            outs = part(*(pool[n] for n in part.layout.input_names))
            pool.update(zip(part.layout.output_names, outs, strict=True))
        return self.ordered(dict(pool))


_SPLIT: tuple[tuple[str, type[_Graph]], ...] = (
    ("texture", TextureGraph),
    ("deformation", DeformationGraph),
    ("warp", WarpGraph),
)
_WRAPPERS: dict[str, type[_Graph]] = {
    "encoder": EncoderGraph,
    "texture": TextureGraph,
    "deformation": DeformationGraph,
    "warp": WarpGraph,
    "decoder": DecoderGraph,
}


def build_graphs(model: Model) -> dict[str, _Graph]:
    """The wrappers for every graph this model's bundle has, keyed as in the manifest, in eval mode."""
    layout = graph_layout(sizes_of(model.cfg))
    return {key: _WRAPPERS[key](model, lay).eval() for key, lay in layout.items()}
