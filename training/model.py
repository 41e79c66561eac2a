"""The Deforming Autoencoder family: DAE, class-aware DAE, intrinsic DAE, and the plain-autoencoder baseline.

Networks follow the release's plain (non-dense) ``waspEncoder``/``waspDecoder`` shape, generalised to N in
{32, 64, 128}. The release's dense nets are not used: their forward pass applies only the first layer of each
dense block, so most of their parameters never get a gradient (see shared design notes, §2).

Data flow (B = batch, C = channels, N = image size)::

    x (B, C, N, N) --Encoder--> z (B, zdim) --heads--> appearance (B, A), shape (B, S) [, shading, class_logits]
    TextureDecoder(appearance [, class code])  -> texture    (B, C, N, N) in [0, 1]
    DeformationDecoder(shape [, class code])   -> increments (B, 2, N, N) in (0, 1) [, affine (B, 6)]
    warp.integrate(increments) -> grid (B, 2, N, N);  reconstruction = warp.warp(texture, grid)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training import warp as warp_ops
from training.config import ModelConfig


def _norm(kind: str, channels: int) -> nn.Module:
    # InstanceNorm without affine parameters (the release's choice) makes outputs independent of the batch;
    # BatchNorm is offered for parity with the release's BatchNorm runs. Both are eval()-safe.
    # Per-image normalisation also removes what is constant over each feature map, so an image's overall
    # colour barely reaches the code or the output: on RGB synthetic-lit even a plain autoencoder stays grey
    # after 300 steps with it and is coloured with BatchNorm (issue 12); use BatchNorm for colour data.
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    return nn.BatchNorm2d(channels)


def _stages(size: int) -> int:
    """Number of stride-2 stages between size N and 4: N=32 → 3, 64 → 4, 128 → 5."""
    return int(math.log2(size)) - 2


class Encoder(nn.Module):
    """x (B, C, N, N) → z (B, zdim) in (0, 1)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.channels, cfg.ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        ch = cfg.ndf
        for _ in range(_stages(cfg.image_size) - 1):  # N/2 → 4
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), _norm(cfg.norm, ch * 2), nn.LeakyReLU(0.2, True)]
            ch *= 2
        layers += [nn.Conv2d(ch, cfg.zdim, 4, 4, 0, bias=False), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        z: Tensor = self.net(x)
        return z.flatten(1)  # (B, zdim)


class Decoder(nn.Module):
    """latent (B, D) → image-shaped map (B, out_channels, N, N).

    ConvTranspose 4×4 to 4×4 with 8·ngf channels, then stride-2 stages halving channels (floor ngf),
    each with Norm and the hidden activation, then a 3×3 ConvTranspose to ``out_channels``.
    """

    def __init__(
        self, cfg: ModelConfig, in_dim: int, out_channels: int, hidden: type[nn.Module], final: nn.Module
    ) -> None:
        super().__init__()
        ch = cfg.ngf * 8
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_dim, ch, 4, 1, 0, bias=False), _norm(cfg.norm, ch), hidden()]
        for _ in range(_stages(cfg.image_size)):  # 4 → N
            nxt = max(cfg.ngf, ch // 2)
            layers += [nn.ConvTranspose2d(ch, nxt, 4, 2, 1, bias=False), _norm(cfg.norm, nxt), hidden()]
            ch = nxt
        layers += [nn.ConvTranspose2d(ch, out_channels, 3, 1, 1, bias=False), final]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        out: Tensor = self.net(z[:, :, None, None])
        return out


def texture_decoder(cfg: ModelConfig, in_dim: int, channels: int) -> Decoder:
    """TextureDecoder: ReLU stages, Hardtanh(0, 1) output (the release's texture range)."""
    return Decoder(cfg, in_dim, channels, nn.ReLU, nn.Hardtanh(0.0, 1.0))


def deformation_decoder(cfg: ModelConfig, in_dim: int) -> Decoder:
    """DeformationDecoder: Tanh stages, Sigmoid output → non-negative increments in (0, 1)."""
    return Decoder(cfg, in_dim, 2, nn.Tanh, nn.Sigmoid())


@dataclass
class Latents:
    """The encoder's factors. ``class_logits`` only for class-aware, ``shading`` only for intrinsic models."""

    shape: Tensor  # (B, shape_dim)
    appearance: Tensor  # (B, appearance_dim)
    shading: Tensor | None = None  # (B, shading_dim)
    class_logits: Tensor | None = None  # (B, K)


@dataclass
class Output:
    """Everything a forward pass produces; the losses and the sample pictures read these."""

    latents: Latents
    texture: Tensor  # (B, C, N, N) in template coordinates
    reconstruction: Tensor  # (B, C, N, N)
    increments: Tensor | None = None  # (B, 2, N, N) in (0, 1)
    grid: Tensor | None = None  # (B, 2, N, N) final sampling grid (after the affine head, if any)
    residual: Tensor | None = None  # (B, 2, N, N) integral grid minus identity: what the warp losses see
    affine: Tensor | None = None  # (B, 6)
    albedo: Tensor | None = None  # intrinsic: (B, C, N, N)
    shading: Tensor | None = None  # intrinsic: (B, 1, N, N)


def init_weights(module: nn.Module) -> None:
    """Release init: conv weights N(0, 0.02); norm weights N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class LatentModel(nn.Module):
    """The interface every model shares: encode to latents, a class code, decode to an :class:`Output`.

    Trainer, evaluation, figures and export call only these, so no caller dispatches on the model class.
    """

    cfg: ModelConfig
    encoder: Encoder

    def encode(self, x: Tensor) -> Latents:
        raise NotImplementedError

    def class_code(
        self, latents: Latents, labels: Tensor | None = None, class_override: Tensor | None = None
    ) -> Tensor | None:
        """The code appended to decoder inputs; ``None`` for models without classes."""
        return None

    def decode(self, latents: Latents, code: Tensor | None = None) -> Output:
        raise NotImplementedError

    def decode_texture(self, latents: Latents, code: Tensor | None) -> dict[str, Tensor]:
        """``texture`` [, ``albedo``, ``shading``] in the template frame (a plain AE's output image)."""
        raise NotImplementedError

    def decode_deformation(self, latents: Latents, code: Tensor | None) -> dict[str, Tensor]:
        """``increments`` [, ``affine``]; only models with a warp have one."""
        raise ValueError(f"a {self.cfg.variant} model has no deformation decoder")

    def warp(self, increments: Tensor, texture: Tensor, affine: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``(grid, displacement, reconstruction)``: the exported warp module; only models with a warp."""
        raise ValueError(f"a {self.cfg.variant} model has no warp")

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by role, for per-decoder learning rates: ``encoder`` (with the latent heads and the
        affine head), ``texture`` and ``deformation``."""
        raise NotImplementedError

    def forward(
        self,
        x: Tensor,
        labels: Tensor | None = None,
        class_override: Tensor | None = None,
        appearance_gate: Tensor | None = None,
    ) -> Output:
        """Encode and decode. Without ``labels`` a class-aware model decodes with its predicted class
        probabilities (inference). ``appearance_gate`` (B, 1) scales the appearance code: the trainer's
        warm-up holds it at 0 so the warp has to explain shape before the texture may vary."""
        latents = self.encode(x)
        if appearance_gate is not None:
            latents = replace(latents, appearance=latents.appearance * appearance_gate)
        return self.decode(latents, self.class_code(latents, labels, class_override))


class DeformingAutoencoder(LatentModel):
    """The DAE (variant ``dae``); the base of the class-aware and intrinsic variants."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        k = self.class_code_dim
        self.encoder = Encoder(cfg)
        self.to_appearance = nn.Sequential(nn.Linear(cfg.zdim, cfg.appearance_dim), nn.Sigmoid())
        self.to_shape = nn.Sequential(nn.Linear(cfg.zdim, cfg.shape_dim), nn.Sigmoid())
        self.deformation = deformation_decoder(cfg, cfg.shape_dim + k)
        self._build_texture(cfg, k)
        self.affine_head: nn.Linear | None = None
        if cfg.warp == "affine+integral":
            self.affine_head = nn.Linear(cfg.shape_dim + k, 6)
        self.warper = warp_ops.WarpModule(cfg.image_size, cfg.warp_constants, affine=self.affine_head is not None)
        init_weights(self)
        if self.affine_head is not None:
            # Start at the identity affine so the model begins as a pure integral warp.
            nn.init.zeros_(self.affine_head.weight)
            with torch.no_grad():
                self.affine_head.bias.copy_(torch.tensor(warp_ops.IDENTITY_AFFINE))

    @property
    def class_code_dim(self) -> int:
        return 0

    def _build_texture(self, cfg: ModelConfig, k: int) -> None:
        self.texture = texture_decoder(cfg, cfg.appearance_dim + k, cfg.channels)

    # -- encoder side -------------------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Latents:
        z = self.encoder(x)
        return Latents(shape=self.to_shape(z), appearance=self.to_appearance(z))

    # -- decoder side -------------------------------------------------------------------------------------
    @staticmethod
    def _with_code(z: Tensor, code: Tensor | None) -> Tensor:
        return z if code is None else torch.cat((z, code), dim=1)

    def decode_texture(self, latents: Latents, code: Tensor | None) -> dict[str, Tensor]:
        return {"texture": self.texture(self._with_code(latents.appearance, code))}

    def decode_deformation(self, latents: Latents, code: Tensor | None) -> dict[str, Tensor]:
        z = self._with_code(latents.shape, code)
        out = {"increments": self.deformation(z)}
        if self.affine_head is not None:
            out["affine"] = self.affine_head(z)
        return out

    def decode(self, latents: Latents, code: Tensor | None = None) -> Output:
        tex = self.decode_texture(latents, code)
        deform = self.decode_deformation(latents, code)
        increments = deform["increments"]
        integral = warp_ops.integrate(increments, self.cfg.warp_constants)
        affine = deform.get("affine")
        grid = integral if affine is None else warp_ops.apply_affine(integral, affine)
        reconstruction = warp_ops.warp(tex["texture"], grid)
        return Output(
            latents=latents,
            texture=tex["texture"],
            reconstruction=reconstruction,
            increments=increments,
            grid=grid,
            residual=integral - self.warper.identity,
            affine=affine,
            albedo=tex.get("albedo"),
            shading=tex.get("shading"),
        )

    def warp(self, increments: Tensor, texture: Tensor, affine: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        return self.warper(increments, texture, affine)  # type: ignore[no-any-return]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        deformation = set(map(id, self.deformation.parameters()))
        texture = {id(p) for name, p in self.named_parameters() if name.split(".")[0] in _TEXTURE_MODULES}
        groups: dict[str, list[nn.Parameter]] = {"encoder": [], "texture": [], "deformation": []}
        for p in self.parameters():
            key = "deformation" if id(p) in deformation else "texture" if id(p) in texture else "encoder"
            groups[key].append(p)
        return groups


# Sub-modules that paint the template (the intrinsic model's albedo and shading decoders included).
_TEXTURE_MODULES = ("texture", "albedo", "shading_decoder")


class ClassAwareDAE(DeformingAutoencoder):
    """A third latent, the class: a classifier head on z; its code feeds both decoders.

    Training feeds the label's one-hot (teacher forcing, so each class learns its own template and family
    of deformations); inference feeds the predicted probabilities; ``class_override`` (indices or a
    (B, K) code) decodes "this digit's shape as a 7".
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.to_class = nn.Linear(cfg.zdim, cfg.num_classes)

    @property
    def class_code_dim(self) -> int:
        return self.cfg.num_classes

    def encode(self, x: Tensor) -> Latents:
        z = self.encoder(x)
        return Latents(shape=self.to_shape(z), appearance=self.to_appearance(z), class_logits=self.to_class(z))

    def class_code(
        self, latents: Latents, labels: Tensor | None = None, class_override: Tensor | None = None
    ) -> Tensor:
        k = self.cfg.num_classes
        chosen = class_override if class_override is not None else labels
        if chosen is not None:
            if chosen.dim() == 1:
                return F.one_hot(chosen.long(), k).to(latents.shape.dtype)
            return chosen.to(latents.shape.dtype)
        assert latents.class_logits is not None
        return torch.softmax(latents.class_logits, dim=1)


class IntrinsicDAE(DeformingAutoencoder):
    """texture = shading (1 channel) × albedo (C channels), both in template coordinates, warped together."""

    def _build_texture(self, cfg: ModelConfig, k: int) -> None:
        # Hardtanh(0, 1) has no gradient above 1: an albedo that goes white in every channel (what happens first
        # when the shading can paint an object on black by itself) can never learn colour or pattern again.
        # A sigmoid output always has a gradient (albedo_output="sigmoid"; docs/results.md has what it changed).
        if cfg.albedo_output == "sigmoid":
            self.albedo = Decoder(cfg, cfg.appearance_dim + k, cfg.channels, nn.ReLU, nn.Sigmoid())
        else:
            self.albedo = texture_decoder(cfg, cfg.appearance_dim + k, cfg.channels)
        self.shading_decoder = texture_decoder(cfg, cfg.shading_dim, 1)
        self.to_shading = nn.Sequential(nn.Linear(cfg.zdim, cfg.shading_dim), nn.Sigmoid())

    def encode(self, x: Tensor) -> Latents:
        z = self.encoder(x)
        return Latents(shape=self.to_shape(z), appearance=self.to_appearance(z), shading=self.to_shading(z))

    def decode_texture(self, latents: Latents, code: Tensor | None) -> dict[str, Tensor]:
        assert latents.shading is not None
        albedo = self.albedo(self._with_code(latents.appearance, code))
        shading = self.shading_decoder(latents.shading)
        floor = self.cfg.shading_floor
        if floor > 0.0:  # the decoder's [0, 1] mapped onto [floor, 1]
            shading = floor + (1.0 - floor) * shading
        return {"texture": albedo * shading, "albedo": albedo, "shading": shading}


class PlainAutoencoder(LatentModel):
    """Baseline: the same encoder, one latent of the DAE's total size, one decoder straight to the image."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.to_latent = nn.Sequential(nn.Linear(cfg.zdim, cfg.total_latent_dim), nn.Sigmoid())
        self.decoder = texture_decoder(cfg, cfg.total_latent_dim, cfg.channels)
        init_weights(self)

    def encode(self, x: Tensor) -> Latents:
        # The whole code is reported as "appearance"; a plain AE has no shape factor.
        z = self.to_latent(self.encoder(x))
        return Latents(shape=z[:, :0], appearance=z)

    def decode_texture(self, latents: Latents, code: Tensor | None) -> dict[str, Tensor]:
        return {"texture": self.decoder(latents.appearance)}

    def decode(self, latents: Latents, code: Tensor | None = None) -> Output:
        image = self.decoder(latents.appearance)
        return Output(latents=latents, texture=image, reconstruction=image)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        decoder = set(map(id, self.decoder.parameters()))
        return {
            "encoder": [p for p in self.parameters() if id(p) not in decoder],
            "texture": list(self.decoder.parameters()),
            "deformation": [],
        }


Model = LatentModel


def build_model(cfg: ModelConfig) -> Model:
    """The model for ``cfg.variant``."""
    if cfg.variant == "class-aware":
        return ClassAwareDAE(cfg)
    if cfg.variant == "intrinsic":
        return IntrinsicDAE(cfg)
    if cfg.variant == "autoencoder":
        return PlainAutoencoder(cfg)
    return DeformingAutoencoder(cfg)
