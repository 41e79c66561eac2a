"""Training options, written once: the :class:`TrainConfig` dataclass *is* the CLI.

Every field carries its help text in ``metadata``; :func:`add_arguments` turns the fields into argparse options
(``appearance_hold`` → ``--appearance-hold``, ``Literal`` types → choices, ``bool`` → ``--x/--no-x``), so a new
option is one line here and nothing else.

The defaults are the recipe that makes the warp carry shape on MNIST at 32×32 (docs/results.md, "Recipe"):
a 2-d appearance code (shape 142, 144 in all like the published 16 + 128), the release's smoothness strength,
the class loss at 0.05, appearance held at zero for the first 30 % of training (1.2 of 4 epochs) and ramped in
over the next 7.5 % (0.3 epochs), four epochs. The published configuration is ``--appearance-dim 16
--shape-dim 128 --appearance-hold 0 --appearance-ramp 0``.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal, get_args, get_origin, get_type_hints

from training.config import (
    GRID_CLAMP,
    GRID_OFFSET,
    INCREMENT_SCALE,
    AlbedoOutput,
    ModelConfig,
    NormKind,
    Variant,
    WarpConstants,
    WarpKind,
)
from training.losses import LossWeights, ReconKind

DataName = Literal["mnist", "fashion-mnist", "folder", "synthetic", "synthetic-lit", "synthetic-lit-objects"]
DeviceName = Literal["auto", "cpu", "cuda"]
ImageSize = Literal[32, 64, 128]
Channels = Literal[1, 3]
_W = LossWeights()


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """What ``python -m training fit`` does; ``--help`` lists every field with its default."""

    # data
    data: DataName = _opt("mnist", "dataset")
    data_dir: str | None = _opt(None, "IDX files (MNIST, Fashion-MNIST) or the image folder")
    image_size: ImageSize = _opt(32, "side N of the square images")
    channels: Channels = _opt(1, "1 (grey) or 3 (RGB)")
    limit: int | None = _opt(None, "use only the first N training images")
    test_limit: int | None = _opt(2000, "test images for the per-epoch test loss")
    # model
    variant: Variant = _opt("dae", "model family")
    warp: WarpKind = _opt("integral", "deformation: integral grid, or an affine head on top of it")
    norm: NormKind = _opt(
        "instance", "normalisation layers; batch for colour data (instance norm removes each image's colour)"
    )
    albedo_output: AlbedoOutput = _opt(
        "hardtanh", "intrinsic only: albedo decoder output; hardtanh (the release's) sticks once an albedo is white"
    )
    shading_floor: float = _opt(
        0.0, "intrinsic only: darkest shading (an ambient light); above 0 a black pixel is the albedo's"
    )
    appearance_dim: int = _opt(2, "appearance (texture) latent; small, so shape has to go through the warp")
    shape_dim: int = _opt(142, "shape (deformation) latent")
    shading_dim: int = _opt(16, "intrinsic only: shading latent")
    zdim: int = _opt(128, "encoder bottleneck")
    ndf: int = _opt(32, "encoder width")
    ngf: int = _opt(32, "decoder width")
    increment_scale: float = _opt(INCREMENT_SCALE, "increments = sigmoid · scale / N")
    grid_offset: float = _opt(GRID_OFFSET, "subtracted after the cumulative sum")
    grid_clamp: float = _opt(GRID_CLAMP, "grid clamped to ±clamp")
    # budget and optimiser
    epochs: int = _opt(4, "passes over the training set (ignored when --max-steps is given)")
    max_steps: int | None = _opt(None, "stop after N optimiser steps")
    batch_size: int = _opt(64, "per process")
    lr: float = _opt(2e-4, "Adam learning rate of the encoder and latent heads")
    texture_lr: float = _opt(1.0, "texture decoder learning rate, as a multiple of --lr")
    deformation_lr: float = _opt(1.0, "deformation decoder learning rate, as a multiple of --lr")
    lr_cooldown: float = _opt(
        0.0, "share of the final steps over which every learning rate falls to 0 (half a cosine); 0 = constant"
    )
    # recipe: how training reaches the warp
    appearance_hold: float = _opt(
        0.3, "share of the steps with the appearance code held at 0 (warp must explain shape)"
    )
    appearance_ramp: float = _opt(0.075, "share of the steps over which appearance then ramps linearly from 0 to 1")
    appearance_dropout: float = _opt(0.0, "after the hold: probability that a sample's appearance code is zeroed")
    affine_stage: float = _opt(0.0, "affine+integral: share of the steps in which only the affine head deforms")
    # losses
    recon: ReconKind = _opt(_W.reconstruction, "reconstruction loss")
    smooth_weight: float = _opt(_W.smooth, "TV of the residual warp in pixels; 1.0 = the release at batch 64, 32×32")
    bias_weight: float = _opt(_W.bias, "squared batch-mean residual in pixels (template drift)")
    shading_weight: float = _opt(_W.shading_smooth, "intrinsic shading smoothness")
    class_weight: float = _opt(_W.classification, "class-aware cross-entropy")
    # run
    seed: int = _opt(0, "seed of weights, data order and the appearance dropout")
    device: DeviceName = _opt("auto", "cuda when available")
    out: str = _opt("runs/dae", "run directory")
    resume: bool = _opt(False, "continue from OUT/last.pt")
    log_every: int = _opt(20, "steps between metrics.jsonl lines")
    progress: bool = _opt(True, "progress bar")
    command: str = field(default="", metadata={"cli": False})

    def __post_init__(self) -> None:
        for name in ("appearance_hold", "appearance_ramp", "appearance_dropout", "affine_stage", "lr_cooldown"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(self, name)}")
        if self.appearance_hold + self.appearance_ramp > 1.0:
            raise ValueError("--appearance-hold + --appearance-ramp must not exceed 1")
        for name in ("epochs", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be positive")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("--max-steps must be positive")

    def loss_weights(self) -> LossWeights:
        return LossWeights(
            reconstruction=self.recon,
            smooth=self.smooth_weight,
            bias=self.bias_weight,
            shading_smooth=self.shading_weight,
            classification=self.class_weight,
        )

    def model_config(self, num_classes: int = 10, class_names: tuple[str, ...] = ()) -> ModelConfig:
        return ModelConfig(
            variant=self.variant,
            image_size=self.image_size,
            channels=self.channels,
            appearance_dim=self.appearance_dim,
            shape_dim=self.shape_dim,
            shading_dim=self.shading_dim,
            num_classes=num_classes,
            zdim=self.zdim,
            ndf=self.ndf,
            ngf=self.ngf,
            norm=self.norm,
            albedo_output=self.albedo_output,
            shading_floor=self.shading_floor,
            warp=self.warp,
            warp_constants=WarpConstants(self.increment_scale, self.grid_offset, self.grid_clamp),
            class_names=class_names,
        )


def _scalar(tp: Any) -> tuple[Any, bool]:
    """The argparse type of a field annotation and whether it is optional (``X | None``)."""
    args = get_args(tp)
    if args and type(None) in args and get_origin(tp) is not Literal:
        (inner,) = [a for a in args if a is not type(None)]
        return inner, True
    return tp, False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`TrainConfig` field, with its help text and default."""
    hints = get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        if f.metadata.get("cli", True) is False:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        tp, _ = _scalar(hints[f.name])
        help_text = f.metadata.get("help", "")
        if tp is bool:
            parser.add_argument(flag, default=default, action=argparse.BooleanOptionalAction, help=help_text)
        elif get_origin(tp) is Literal:
            choices = get_args(tp)
            parser.add_argument(flag, default=default, type=type(choices[0]), choices=choices, help=help_text)
        else:
            parser.add_argument(flag, default=default, type=tp, help=help_text)


def from_namespace(ns: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """The config from parsed options (fields only; other attributes of ``ns`` are ignored)."""
    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in vars(ns).items() if k in names}
    values.update(overrides)
    return TrainConfig(**values)


__all__ = ["DataName", "TrainConfig", "add_arguments", "from_namespace"]
