"""The warp: identity, integration, monotonicity, and agreement with the release's integrator."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training import warp
from training.config import ModelConfig, WarpConstants
from training.model import build_model


def test_identity_grid_reproduces_input_with_align_corners_true() -> None:
    x = torch.rand(3, 2, 32, 32)
    out = warp.warp(x, warp.identity_grid(32).expand(3, -1, -1, -1))
    assert (out - x).abs().max() < 1e-5


def test_default_align_corners_false_would_break_the_identity() -> None:
    # The pitfall the module exists to avoid: today's default shifts and darkens the borders.
    x = torch.rand(1, 1, 32, 32)
    grid = warp.identity_grid(32).permute(0, 2, 3, 1)
    wrong = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    assert (wrong - x).abs().max() > 0.1


def test_identity_grid_layout() -> None:
    g = warp.identity_grid(5)
    assert g.shape == (1, 2, 5, 5)
    assert torch.allclose(g[0, 0, 2], torch.linspace(-1, 1, 5))  # x varies along the width
    assert torch.allclose(g[0, 1, :, 3], torch.linspace(-1, 1, 5))  # y varies along the height


def test_constant_increments_integrate_to_a_linear_ramp() -> None:
    n, c = 32, 0.5
    k = WarpConstants()
    grid = warp.integrate(torch.full((2, 2, n, n), c), k)
    j = torch.arange(1, n + 1, dtype=torch.float32)
    ramp = torch.clamp(j * c * k.increment_scale / n - k.offset, -k.clamp, k.clamp)
    assert torch.allclose(grid[0, 0, 7], ramp, atol=1e-6)  # along the width, every row the same
    assert torch.allclose(grid[1, 1, :, 11], ramp, atol=1e-6)  # along the height


def test_integration_equals_the_release_transposed_convolution() -> None:
    # The release integrates with conv_transpose2d of an all-ones (1 × N) filter: it must equal our cumsum.
    n = 16
    s = torch.rand(2, 2, n, n)
    k = WarpConstants()
    g = s * k.increment_scale / n
    ones_x = torch.ones(1, 1, 1, n)
    ones_y = torch.ones(1, 1, n, 1)
    phi_x = F.conv_transpose2d(g[:, 0:1], ones_x)[:, :, :, :n]
    phi_y = F.conv_transpose2d(g[:, 1:2], ones_y)[:, :, :n, :]
    release = torch.clamp(torch.cat((phi_x, phi_y), 1) - k.offset, -k.clamp, k.clamp)
    assert (release - warp.integrate(s, k)).abs().max() < 1e-5


def test_random_decoder_outputs_give_fold_free_grids() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_size=32, ndf=8, ngf=8)).eval()
    with torch.no_grad():
        out = model(torch.rand(8, 1, 32, 32) * 3 - 1)  # off-distribution inputs: still no folding
    assert out.grid is not None
    assert (out.grid[:, 0, :, 1:] - out.grid[:, 0, :, :-1]).min() >= 0  # x non-decreasing along the width
    assert (out.grid[:, 1, 1:, :] - out.grid[:, 1, :-1, :]).min() >= 0  # y non-decreasing along the height


def test_identity_affine_leaves_the_grid_unchanged_and_rotation_moves_it() -> None:
    grid = warp.integrate(torch.rand(2, 2, 16, 16))
    same = warp.apply_affine(grid, torch.tensor([warp.IDENTITY_AFFINE] * 2))
    assert torch.allclose(same, grid, atol=1e-6)
    swap = warp.apply_affine(grid, torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0, 0.0]] * 2))
    assert torch.allclose(swap[:, 0], grid[:, 1]) and torch.allclose(swap[:, 1], grid[:, 0])


def test_warp_module_matches_the_functions() -> None:
    inc, tex = torch.rand(3, 2, 32, 32), torch.rand(3, 1, 32, 32)
    grid, disp, rec = warp.WarpModule(32)(inc, tex)
    assert torch.equal(grid, warp.integrate(inc))
    assert torch.allclose(disp, grid - warp.identity_grid(32))
    assert torch.equal(rec, warp.warp(tex, grid))
