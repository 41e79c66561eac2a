"""A straightforward port of the authors' training step, for speed comparison only (never used to train).

The authors' release (zhixinshu/DeformingAutoencoders-pytorch, ``train_DAE_CelebA.py``) does, per batch::

    dp0_z = encoders(img); texture, resWarping, out, warping = decoders(dp0_zI, dp0_zW, basegrid)
    loss = L1Loss()(out, img) + TotalVaryLoss(resWarping, weight=1e-6) + BiasReduceLoss(resWarping, 0, 1e-2)
    loss.backward(); updator_encoders.step(); updator_decoders.step()

with the integrator ``waspGridSpatialIntegral``: a transposed convolution of each increment channel with an
all-ones ``1×N`` (x) or ``N×1`` (y) filter, cropped to ``N×N``; TV *summed* over every forward difference;
bias reduction = MSE of the batch-mean residual against zero; two Adam optimisers (encoders, decoders).

What is kept from our code, so the comparison isolates the step itself: the same nets (the release's plain
``waspEncoder``/``waspDecoder`` shape, which :mod:`training.model` generalises), the same latent heads, the
same published warp constants, and ``grid_sample(align_corners=True)`` (how the release's PyTorch behaved).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.config import ModelConfig
from training.model import DeformingAutoencoder
from training.warp import identity_grid


class ReleaseIntegrator(nn.Module):
    """``waspGridSpatialIntegral``: all-ones transposed convolutions, O(N) work per output pixel."""

    filterx: Tensor
    filtery: Tensor

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("filterx", torch.ones(1, 1, 1, size), persistent=False)
        self.register_buffer("filtery", torch.ones(1, 1, size, 1), persistent=False)

    def forward(self, diff: Tensor) -> Tensor:
        n = self.size
        fullx = F.conv_transpose2d(diff[:, 0:1], self.filterx, stride=1, padding=0)  # (B, 1, N, 2N-1)
        fully = F.conv_transpose2d(diff[:, 1:2], self.filtery, stride=1, padding=0)  # (B, 1, 2N-1, N)
        return torch.cat((fullx[:, :, 0:n, 0:n], fully[:, :, 0:n, 0:n]), dim=1)


def total_vary_loss(x: Tensor, weight: float) -> Tensor:
    """``TotalVaryLoss``: weight × *sum* of |forward differences| (couples the weight to batch size)."""
    return weight * ((x[:, :, :, :-1] - x[:, :, :, 1:]).abs().sum() + (x[:, :, :-1, :] - x[:, :, 1:, :]).abs().sum())


def bias_reduce_loss(x: Tensor, weight: float) -> Tensor:
    """``BiasReduceLoss``: weight × MSE(batch-mean residual, zero)."""
    avg = x.mean(dim=0, keepdim=True)
    return weight * F.mse_loss(avg, torch.zeros_like(avg))


class ReleaseStep:
    """One release-style optimiser step on a fixed batch; call the object to run it."""

    def __init__(self, image_size: int, device: torch.device | str = "cpu") -> None:
        cfg = ModelConfig(variant="dae", image_size=image_size)
        # The same nets as ours; only the step around them (integrator, losses, optimisers) is the release's.
        self.nets = DeformingAutoencoder(cfg).to(device)
        self.cfg = cfg
        self.integrator = ReleaseIntegrator(image_size).to(device)
        self.basegrid = identity_grid(image_size, device=torch.device(device))
        self.cutter = nn.Hardtanh(-1.0, 1.0)
        n = self.nets
        encoders = [*n.encoder.parameters(), *n.to_appearance.parameters(), *n.to_shape.parameters()]
        decoders = [*n.texture.parameters(), *n.deformation.parameters()]
        self.updator_encoders = torch.optim.Adam(encoders, lr=2e-4, betas=(0.5, 0.999))
        self.updator_decoders = torch.optim.Adam(decoders, lr=2e-4, betas=(0.5, 0.999))

    def forward(self, img: Tensor) -> tuple[Tensor, Tensor]:
        """The release's ``Decoders.forward``: returns (output, resWarping)."""
        n, c = self.nets, self.cfg.warp_constants
        z = n.encoder(img)
        z_i, z_w = n.to_appearance(z), n.to_shape(z)
        texture = n.texture(z_i)
        differential = n.deformation(z_w) * (c.increment_scale / self.cfg.image_size)
        warping = self.cutter(self.integrator(differential) - c.offset)
        res_warping = warping - self.basegrid
        out = F.grid_sample(texture, warping.permute(0, 2, 3, 1), align_corners=True)
        return out, res_warping

    def __call__(self, img: Tensor) -> float:
        self.updator_encoders.zero_grad()
        self.updator_decoders.zero_grad()
        out, res = self.forward(img)
        loss = F.l1_loss(out, img) + total_vary_loss(res, 1e-6) + bias_reduce_loss(res, 1e-2)
        torch.autograd.backward(loss)
        self.updator_encoders.step()
        self.updator_decoders.step()
        return float(loss.detach())


def our_step(image_size: int, device: torch.device | str = "cpu") -> Callable[[Tensor], float]:
    """Our trainer's step (``training.train``'s model, ``dae_loss`` and Adam), as a callable on a batch."""
    from training.losses import dae_loss
    from training.model import build_model

    model = build_model(ModelConfig(variant="dae", image_size=image_size)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def step(img: Tensor) -> float:
        loss, _ = dae_loss(model(img), img)
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        opt.step()
        return float(loss.detach())

    return step
