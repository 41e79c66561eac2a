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


# -- one weight, one deformation penalty at every size and batch (issue 12) -----------------------------------
def _bend(n: int, batch: int, px: float = 3.0) -> torch.Tensor:
    """A residual (B, 2, N, N) whose x offset rises smoothly from 0 to ``px`` pixels across the image."""
    ramp = torch.linspace(0.0, 1.0, n) ** 2 * px  # pixels
    r = torch.zeros(batch, 2, n, n)
    r[:, 0] = ramp[None, None, :] * 2.0 / (n - 1)  # to normalised units
    return r


@pytest.mark.parametrize("n", [32, 64, 128])
@pytest.mark.parametrize("batch", [8, 64, 100])
def test_smoothness_of_the_same_bend_in_pixels_is_the_same_at_every_size_and_batch(n: int, batch: int) -> None:
    # The same picture at 2× the size carries a 2× larger bend in pixels spread over 2× the pixels:
    # per-pixel differences in pixels stay put, so the term does.
    reference = float(losses.smoothness(_bend(32, 64, px=3.0)))
    assert float(losses.smoothness(_bend(n, batch, px=3.0 * (n - 1) / 31))) == pytest.approx(reference, rel=2e-2)


@pytest.mark.parametrize("n", [32, 64, 128])
def test_drift_of_the_same_shift_in_pixels_is_the_same_at_every_size(n: int) -> None:
    shift = torch.zeros(16, 2, n, n)
    shift[:, 1] = 1.5 * 2.0 / (n - 1)  # the whole template 1.5 px down
    assert float(losses.drift(shift)) == pytest.approx(losses.RELEASE_BIAS_PER_PX2 * 1.5**2 / 2, rel=1e-5)


def test_weight_one_is_the_release_at_batch_64_and_32x32_and_two_at_64x64() -> None:
    def release(r: torch.Tensor) -> float:
        dx = (r[..., :, 1:] - r[..., :, :-1]).abs().sum()
        dy = (r[..., 1:, :] - r[..., :-1, :]).abs().sum()
        return float(1e-6 * (dx + dy))

    r32 = torch.rand(64, 2, 32, 32) * 0.05
    assert float(losses.smoothness(r32)) == pytest.approx(release(r32), rel=1e-4)
    same_picture_64 = torch.nn.functional.interpolate(r32, size=64, mode="bilinear", align_corners=True)
    # The release at 64×64 penalises the same picture about twice as hard (it sums 4× the terms, each half).
    assert release(same_picture_64) / float(losses.smoothness(same_picture_64)) == pytest.approx(2.0, rel=0.1)
    # The release's bias term is already batch-free and equals ours at 32×32.
    assert float(losses.drift(r32)) == pytest.approx(float(((r32.mean(0)) ** 2).mean()), rel=1e-5)
