"""The warp: identity grid, integration of increments, affine head application, and sampling.

This module is the only warp code in the project. The trainer calls it, the exporter exports
:class:`WarpModule` (built from these functions) to ONNX, and the service runs that ONNX graph.

Conventions (all NCHW, float32):
- grids are ``(B, 2, H, W)``; channel 0 is x (along the width), channel 1 is y (along the height);
  values are normalised coordinates with -1 and +1 on the centres of the border pixels, which is what
  ``grid_sample(..., align_corners=True)`` means (the release predates the ``align_corners`` switch and
  behaved like ``True``; today's default ``False`` breaks the identity, see tests/training/test_warp.py).
- ``increments`` are decoder outputs in (0, 1); ``integrate`` scales them by ``increment_scale / N`` so
  each grid coordinate is a non-decreasing cumulative sum: the warp cannot fold.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.config import WarpConstants


def identity_grid(size: int, *, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """The identity sampling grid W0, ``(1, 2, size, size)``: x = linspace(-1, 1) along width, y along height."""
    lin = torch.linspace(-1.0, 1.0, size, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")  # each (H, W)
    return torch.stack((gx, gy), dim=0).unsqueeze(0)


def integrate(increments: Tensor, constants: WarpConstants = WarpConstants()) -> Tensor:
    """Non-negative increments ``(B, 2, H, W)`` in (0, 1) → absolute grid ``(B, 2, H, W)``.

    Φx = cumsum along the width of the x increments, Φy = cumsum along the height of the y increments
    (inclusive), then ``clamp(Φ - offset, -clamp, clamp)``. The release integrates with a transposed
    convolution of an all-ones filter; cumsum is the same to 1e-5, O(N) per row, and exports as ONNX CumSum.
    """
    size = increments.shape[-1]
    g = increments * (constants.increment_scale / size)
    phi_x = torch.cumsum(g[:, 0:1], dim=3)  # (B, 1, H, W), along the width
    phi_y = torch.cumsum(g[:, 1:2], dim=2)  # (B, 1, H, W), along the height
    phi = torch.cat((phi_x, phi_y), dim=1)
    return torch.clamp(phi - constants.offset, -constants.clamp, constants.clamp)


def apply_affine(grid: Tensor, affine: Tensor) -> Tensor:
    """Apply a per-image affine map ``(B, 6)`` = rows of a 2×3 matrix to every point of ``grid (B, 2, H, W)``.

    No clamp afterwards: points that leave [-1, 1] sample zero padding, as for any affine warp.
    """
    theta = affine.view(-1, 2, 3)
    a = theta[:, :, :2]  # (B, 2, 2)
    t = theta[:, :, 2:]  # (B, 2, 1)
    b, _, h, w = grid.shape
    flat = grid.reshape(b, 2, h * w)
    return (torch.bmm(a, flat) + t).reshape(b, 2, h, w)


def warp(texture: Tensor, grid: Tensor) -> Tensor:
    """Sample ``texture (B, C, H, W)`` at ``grid (B, 2, H, W)``: bilinear, zero padding, align_corners=True."""
    return F.grid_sample(texture, grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="zeros", align_corners=True)


class WarpModule(nn.Module):
    """increments (+ affine) and texture → (grid, displacement, reconstruction). Exported to ONNX as-is.

    ``displacement`` is ``grid - identity`` in normalised units (one pixel = 2 / (N - 1)).
    """

    identity: Tensor  # (1, 2, N, N) buffer; declared so type checkers know it is a tensor

    def __init__(self, size: int, constants: WarpConstants = WarpConstants(), *, affine: bool = False) -> None:
        super().__init__()
        self.size = size
        self.constants = constants
        self.affine = affine
        self.register_buffer("identity", identity_grid(size), persistent=False)

    def forward(
        self, increments: Tensor, texture: Tensor, affine: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        grid = integrate(increments, self.constants)
        if self.affine:
            if affine is None:
                raise ValueError("this warp has an affine head: pass the affine parameters")
            grid = apply_affine(grid, affine)
        reconstruction = warp(texture, grid)
        return grid, grid - self.identity, reconstruction


IDENTITY_AFFINE = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
