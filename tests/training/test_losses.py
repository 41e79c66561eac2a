"""Losses on inputs whose answer is known."""

from __future__ import annotations

import pytest
import torch

from training import losses


def test_total_variation_of_constant_is_zero_and_of_a_ramp_is_its_slope() -> None:
    assert float(losses.total_variation(torch.full((2, 2, 8, 8), 0.3))) == 0.0
    ramp = torch.arange(8.0).expand(1, 1, 8, 8)  # +1 per column, 0 per row
    # 8 rows × 7 differences of 1 along x, 7 × 8 differences of 0 along y.
    assert float(losses.total_variation(ramp)) == pytest.approx(56 / 112)


def test_release_sum_equals_documented_multiple_of_the_mean() -> None:
    r = torch.rand(100, 2, 64, 64)
    dx = (r[..., :, 1:] - r[..., :, :-1]).abs().sum()
    dy = (r[..., 1:, :] - r[..., :-1, :]).abs().sum()
    release = 1e-6 * (dx + dy)
    assert float(release / losses.total_variation(r)) == pytest.approx(1.6128, rel=1e-3)


def test_bias_reduction_sees_only_the_batch_mean() -> None:
    r = torch.randn(4, 2, 8, 8)
    assert float(losses.bias_reduction(torch.cat([r, -r]))) == pytest.approx(0.0, abs=1e-12)
    assert float(losses.bias_reduction(torch.full((3, 2, 4, 4), 0.5))) == pytest.approx(0.25)


def test_reconstruction_kinds() -> None:
    a, b = torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 0.5)
    assert float(losses.reconstruction_loss(a, b, "l1")) == pytest.approx(0.5)
    assert float(losses.reconstruction_loss(a, b, "l2")) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        losses.reconstruction_loss(a, b, "l3")  # type: ignore[arg-type]


def test_squared_smoothness() -> None:
    ramp = (torch.arange(4.0) * 2).expand(1, 1, 4, 4)
    assert float(losses.squared_smoothness(ramp)) == pytest.approx(4 * 12 / 24)
