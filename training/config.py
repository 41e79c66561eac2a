"""Model configuration: a frozen dataclass stored in every checkpoint so any consumer can rebuild the model.

The warp constants default to the published model (Shu et al. 2018 and the authors' release):
increments are ``sigmoid(.) * INCREMENT_SCALE / N``, integrated by a cumulative sum, shifted by
``GRID_OFFSET`` and clamped to ``[-GRID_CLAMP, GRID_CLAMP]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

Variant = Literal["dae", "class-aware", "intrinsic", "autoencoder"]
WarpKind = Literal["integral", "affine+integral"]
NormKind = Literal["instance", "batch"]
AlbedoOutput = Literal["hardtanh", "sigmoid"]

VARIANTS: tuple[str, ...] = ("dae", "class-aware", "intrinsic", "autoencoder")
WARP_KINDS: tuple[str, ...] = ("integral", "affine+integral")
ALBEDO_OUTPUTS: tuple[str, ...] = ("hardtanh", "sigmoid")
IMAGE_SIZES: tuple[int, ...] = (32, 64, 128)

# Published constants (release: `5/N` spatial-gradient scale, `-1.2` offset, Hardtanh(-1, 1)).
INCREMENT_SCALE = 5.0
GRID_OFFSET = 1.2
GRID_CLAMP = 1.0


@dataclass(frozen=True)
class WarpConstants:
    """How decoder outputs in (0, 1) become an absolute sampling grid in [-clamp, clamp]."""

    increment_scale: float = INCREMENT_SCALE  # increments are s * increment_scale / N
    offset: float = GRID_OFFSET  # subtracted after the cumulative sum
    clamp: float = GRID_CLAMP  # final grid is clamped to [-clamp, clamp]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model's architecture (weights live beside it in the checkpoint)."""

    variant: Variant = "dae"
    image_size: int = 64
    channels: int = 1
    appearance_dim: int = 16  # official: 16 (texture latent kept short to push shape into the warp)
    shape_dim: int = 128  # official: 128
    shading_dim: int = 16  # intrinsic only
    num_classes: int = 10  # class-aware only
    zdim: int = 128  # encoder bottleneck, before the latent heads
    ndf: int = 32
    ngf: int = 32
    norm: NormKind = "instance"
    # Intrinsic only: the albedo decoder's output. The default is the release's texture output, so checkpoints
    # saved before this field existed rebuild unchanged.
    albedo_output: AlbedoOutput = "hardtanh"
    # Intrinsic only: the darkest shading the model can paint (an ambient light). At 0 (the release's, and
    # what old checkpoints rebuild with) a shading of 0 can explain a black background, so the shading may
    # take the object's silhouette; any floor above 0 leaves a black pixel to the albedo.
    shading_floor: float = 0.0
    warp: WarpKind = "integral"
    warp_constants: WarpConstants = field(default_factory=WarpConstants)
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.warp not in WARP_KINDS:
            raise ValueError(f"warp must be one of {WARP_KINDS}, got {self.warp!r}")
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {self.image_size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.norm not in ("instance", "batch"):
            raise ValueError(f"norm must be 'instance' or 'batch', got {self.norm!r}")
        if self.albedo_output not in ALBEDO_OUTPUTS:
            raise ValueError(f"albedo_output must be one of {ALBEDO_OUTPUTS}, got {self.albedo_output!r}")
        if not 0.0 <= self.shading_floor < 1.0:
            raise ValueError(f"shading_floor must be in [0, 1), got {self.shading_floor}")
        for name in ("appearance_dim", "shape_dim", "shading_dim", "num_classes", "zdim", "ndf", "ngf"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.variant == "class-aware" and self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError("class_names must have num_classes entries")

    @property
    def has_classes(self) -> bool:
        return self.variant == "class-aware"

    @property
    def has_warp(self) -> bool:
        return self.variant != "autoencoder"

    @property
    def total_latent_dim(self) -> int:
        """Latent size a plain autoencoder must match for a fair comparison."""
        n = self.appearance_dim + self.shape_dim
        if self.variant == "intrinsic":
            n += self.shading_dim
        return n

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        if isinstance(kwargs.get("warp_constants"), dict):
            kwargs["warp_constants"] = WarpConstants(**kwargs["warp_constants"])
        if "class_names" in kwargs:
            kwargs["class_names"] = tuple(kwargs["class_names"])
        return cls(**kwargs)
