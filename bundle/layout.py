"""The tensor layout of a bundle: which graphs exist, and each graph's input/output names and shapes.

One pure function, :func:`graph_layout`, derives the whole layout from a handful of numbers (variant, image
size, channels, latent sizes, number of classes, affine head or not). The exporter writes the manifest's
``graphs`` from it, and :mod:`export.verify` re-derives it from a manifest's *own* header fields to catch a
manifest whose latent sizes, class count or tensor names disagree with its graph entries. No torch here.

Layout (B = the dynamic ``"batch"`` axis; see ``bundle/manifest.py`` for the same table)::

    encoder      image (B,C,N,N) -> shape (B,S), appearance (B,A) [, shading_latent (B,L)]
                                    [, class_logits (B,K)]
    texture      appearance [, shading_latent] [, class_code (B,K)] -> texture (B,C,N,N) [, albedo, shading]
    deformation  shape [, class_code] -> increments (B,2,N,N) [, affine (B,6)]
    warp         increments, texture [, affine] -> grid, displacement (B,2,N,N), reconstruction (B,C,N,N)
    decoder      shape, appearance [, shading_latent] [, class_code] -> every texture, deformation and warp
                 output: the three graphs above fused into one (one run per decode; optional in a manifest)

The plain autoencoder has ``encoder: image -> appearance`` (its whole code) and ``texture: appearance ->
texture`` (its reconstruction) only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundle.manifest import Dim, TensorSpec

Shape = tuple[int, ...]  # a tensor's shape without the leading batch axis
# Graph inputs/outputs by tensor name (float32 except where the manifest says int64): what the exporter's
# parity check, the service's runtime and the benchmarks pass between graphs.
Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Sizes:
    """The numbers a layout depends on. ``shading``/``classes`` are 0 for variants without them."""

    variant: str
    image_size: int
    channels: int
    appearance: int
    shape: int = 0
    shading: int = 0
    classes: int = 0
    affine: bool = False


@dataclass(frozen=True)
class GraphLayout:
    """One graph: ordered (name, shape-without-batch) pairs for its inputs and its outputs."""

    key: str
    inputs: tuple[tuple[str, Shape], ...]
    outputs: tuple[tuple[str, Shape], ...]

    @property
    def file(self) -> str:
        return f"{self.key}.onnx"

    @property
    def input_names(self) -> list[str]:
        return [n for n, _ in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [n for n, _ in self.outputs]

    def specs(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        """Manifest ``TensorSpec`` lists (float32, batch axis first) for the inputs and the outputs."""

        def spec(name: str, shape: Shape) -> TensorSpec:
            dims: list[Dim] = ["batch", *shape]
            return TensorSpec(name=name, dtype="float32", shape=dims)

        return [spec(n, s) for n, s in self.inputs], [spec(n, s) for n, s in self.outputs]


def graph_layout(sz: Sizes) -> dict[str, GraphLayout]:
    """Every graph of a bundle with these sizes, in pipeline order (encoder, texture, deformation, warp)."""
    n, c = sz.image_size, sz.channels
    image: Shape = (c, n, n)
    if sz.variant == "autoencoder":
        return {
            "encoder": GraphLayout("encoder", (("image", image),), (("appearance", (sz.appearance,)),)),
            "texture": GraphLayout("texture", (("appearance", (sz.appearance,)),), (("texture", image),)),
        }
    enc_out: list[tuple[str, Shape]] = [("shape", (sz.shape,)), ("appearance", (sz.appearance,))]
    tex_in: list[tuple[str, Shape]] = [("appearance", (sz.appearance,))]
    tex_out: list[tuple[str, Shape]] = [("texture", image)]
    def_in: list[tuple[str, Shape]] = [("shape", (sz.shape,))]
    def_out: list[tuple[str, Shape]] = [("increments", (2, n, n))]
    warp_in: list[tuple[str, Shape]] = [("increments", (2, n, n)), ("texture", image)]
    if sz.variant == "intrinsic":
        enc_out.append(("shading_latent", (sz.shading,)))
        tex_in.append(("shading_latent", (sz.shading,)))
        tex_out += [("albedo", image), ("shading", (1, n, n))]
    if sz.variant == "class-aware":
        enc_out.append(("class_logits", (sz.classes,)))
        tex_in.append(("class_code", (sz.classes,)))
        def_in.append(("class_code", (sz.classes,)))
    if sz.affine:
        def_out.append(("affine", (6,)))
        warp_in.append(("affine", (6,)))
    warp_out: tuple[tuple[str, Shape], ...] = (
        ("grid", (2, n, n)),
        ("displacement", (2, n, n)),
        ("reconstruction", image),
    )
    dec_in = [("shape", (sz.shape,)), *tex_in]
    return {
        "encoder": GraphLayout("encoder", (("image", image),), tuple(enc_out)),
        "texture": GraphLayout("texture", tuple(tex_in), tuple(tex_out)),
        "deformation": GraphLayout("deformation", tuple(def_in), tuple(def_out)),
        "warp": GraphLayout("warp", tuple(warp_in), warp_out),
        "decoder": GraphLayout("decoder", tuple(dec_in), (*tex_out, *def_out, *warp_out)),
    }


def latent_sizes(sz: Sizes) -> list[tuple[str, int]]:
    """The manifest's ``latents`` entries, in the order the encoder outputs them."""
    if sz.variant == "autoencoder":
        return [("appearance", sz.appearance)]
    out = [("shape", sz.shape), ("appearance", sz.appearance)]
    if sz.variant == "intrinsic":
        out.append(("shading_latent", sz.shading))
    return out
