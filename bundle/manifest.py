"""The bundle manifest: the contract between the exporter (writer) and the service (reader).

Neither side owns it: ``export`` and ``service`` both import this package, and it imports neither. A bundle
directory holds
``manifest.json`` plus the ONNX graphs it names::

    encoder.onnx      image (B, C, N, N)              -> shape (B, S), appearance (B, A)
                                                         [, shading_latent (B, L)] [, class_logits (B, K)]
    texture.onnx      appearance [, shading_latent] [, class_code (B, K)]
                                                      -> texture (B, C, N, N) [, albedo, shading (B, 1, N, N)]
    deformation.onnx  shape [, class_code]            -> increments (B, 2, N, N) [, affine (B, 6)]
    warp.onnx         increments, texture [, affine]  -> grid, displacement (B, 2, N, N), reconstruction

    decoder.onnx      shape, appearance [, shading_latent] [, class_code]
                                                      -> texture [, albedo, shading], increments [, affine],
                                                         grid, displacement, reconstruction

``decoder`` is texture + deformation + warp fused into one graph (one run per decode, no host round trip of
texture and grid between graphs); it is optional, so bundles exported before it still load.
A plain autoencoder bundle has ``encoder`` and ``texture`` only (its texture *is* the reconstruction).
Dimension ``"batch"`` is dynamic; every other dimension is fixed.
This module needs only pydantic and the standard library (no onnx, no onnxruntime, no torch).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FORMAT_VERSION: Literal[1] = 1
MANIFEST_NAME = "manifest.json"
GRAPH_NAMES = ("encoder", "texture", "deformation", "warp", "decoder")
OPTIONAL_GRAPHS = frozenset({"decoder"})  # the fused decoder: bundles exported before it have none
Dim = int | Literal["batch"]


class BundleError(Exception):
    """A bundle that cannot be used: missing file, wrong checksum, manifest disagreeing with its graphs."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    name: str
    dtype: Literal["float32", "int64"] = "float32"
    shape: list[Dim]


class GraphSpec(_Strict):
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @field_validator("file")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        # Files live in the bundle directory itself: no paths, so a manifest cannot point outside it.
        if "/" in v or "\\" in v or v in ("", ".", "..") or not v.endswith(".onnx"):
            raise ValueError(f"graph file must be a plain *.onnx name inside the bundle, got {v!r}")
        return v


class LatentSpec(_Strict):
    name: Literal["shape", "appearance", "shading_latent"]
    size: int = Field(ge=0)


class Preprocessing(_Strict):
    """How a user image becomes the encoder input (the trainer's data pipeline does exactly this)."""

    color_mode: Literal["L", "RGB"]  # Pillow mode after conversion; alpha is composited on black first
    resize: Literal["bilinear"] = "bilinear"  # Pillow Image.resize to (image_size, image_size)
    value_range: tuple[float, float] = (0.0, 1.0)  # uint8 / 255
    channel_order: Literal["gray", "RGB"] = "gray"
    layout: Literal["NCHW"] = "NCHW"


class WarpSpec(_Strict):
    increment_scale: float
    offset: float
    clamp: float
    align_corners: Literal[True] = True
    affine: bool = False
    grid_channels: tuple[Literal["x"], Literal["y"]] = ("x", "y")
    units: str = "normalised coordinates: -1 and +1 are the centres of the border pixels (align_corners=True)"


class Provenance(_Strict):
    data: str
    epochs: int | None = None
    steps: int | None = None
    seed: int | None = None
    git_commit: str | None = None
    created: str | None = None
    train_command: str | None = None
    export_command: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)


class Manifest(_Strict):
    format_version: Literal[1] = FORMAT_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    version: str = "1"
    variant: Literal["dae", "class-aware", "intrinsic", "autoencoder"]
    image_size: int
    channels: Literal[1, 3]
    latents: list[LatentSpec]
    class_names: list[str] = Field(default_factory=list)
    graphs: dict[str, GraphSpec]
    opset: int = Field(ge=16)
    warp: WarpSpec | None
    preprocessing: Preprocessing
    provenance: Provenance

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        unknown = set(self.graphs) - set(GRAPH_NAMES)
        if unknown:
            raise ValueError(f"unknown graphs {sorted(unknown)}; expected a subset of {GRAPH_NAMES}")
        needed = {"encoder", "texture"} if self.variant == "autoencoder" else set(GRAPH_NAMES) - OPTIONAL_GRAPHS
        if self.variant == "autoencoder" and "decoder" in self.graphs:
            raise ValueError("an autoencoder has no warp, so no fused decoder graph")
        if missing := needed - set(self.graphs):
            raise ValueError(f"variant {self.variant} needs graphs {sorted(missing)}")
        if (self.variant == "class-aware") != bool(self.class_names):
            raise ValueError("class_names must be given exactly for class-aware models")
        if (self.warp is None) != (self.variant == "autoencoder"):
            raise ValueError("warp must be described for every variant except the autoencoder")
        return self

    # -- convenience ------------------------------------------------------------------------------------------
    def latent_size(self, name: str) -> int:
        for lat in self.latents:
            if lat.name == name:
                return lat.size
        return 0

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def sha256(self) -> str:
        """Identity of the model: the hash of the graphs' hashes (stable across manifest edits)."""
        h = hashlib.sha256()
        for key in sorted(self.graphs):
            h.update(self.graphs[key].sha256.encode())
        return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(bundle_dir: str | Path) -> Manifest:
    path = Path(bundle_dir) / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"no {MANIFEST_NAME} in bundle {bundle_dir}")
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except ValueError as e:
        raise BundleError(f"invalid manifest {path}: {e}") from e


def verify_checksums(bundle_dir: str | Path, manifest: Manifest) -> None:
    """Every graph file exists and has the sha256 the manifest records."""
    root = Path(bundle_dir)
    for key, graph in manifest.graphs.items():
        path = root / graph.file
        if not path.is_file():
            raise BundleError(f"graph {key!r}: file {graph.file} is missing from {root}")
        actual = file_sha256(path)
        if actual != graph.sha256:
            raise BundleError(
                f"graph {key!r}: checksum mismatch for {graph.file}: manifest {graph.sha256[:12]}…, "
                f"file {actual[:12]}… (file changed or manifest stale)"
            )


def _dims(shape: Iterable[object]) -> list[Dim]:
    # onnxruntime reports dynamic axes as strings (their symbolic name) or None; the manifest says "batch".
    return ["batch" if not isinstance(d, int) else d for d in shape]


def check_graph_io(
    key: str,
    spec: GraphSpec,
    inputs: Sequence[tuple[str, Sequence[object]]],
    outputs: Sequence[tuple[str, Sequence[object]]],
) -> None:
    """Compare a loaded graph's (name, shape) inputs/outputs with the manifest; raise naming what disagrees."""
    for side, declared, actual in (("input", spec.inputs, inputs), ("output", spec.outputs, outputs)):
        want = [(t.name, t.shape) for t in declared]
        got = [(name, _dims(shape)) for name, shape in actual]
        if [n for n, _ in want] != [n for n, _ in got]:
            raise BundleError(
                f"graph {key!r}: manifest lists {side}s {[n for n, _ in want]}, the ONNX file has {[n for n, _ in got]}"
            )
        for (name, w), (_, g) in zip(want, got, strict=True):
            if w != g:
                raise BundleError(f"graph {key!r}: {side} {name!r} has shape {g} in the ONNX file, manifest says {w}")
