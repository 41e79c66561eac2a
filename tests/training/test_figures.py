"""Figures: the PNGs exist with the promised layout, and the panels compute what their names say.

.venv/bin/python -m pytest tests/training/test_figures.py -q
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from training import figures
from training.config import ModelConfig
from training.data import build_dataset
from training.model import Latents, Model, build_model
from training.warp import identity_grid

Batch = tuple[torch.Tensor, torch.Tensor]
TINY: dict[str, Any] = dict(image_size=32, ndf=8, ngf=8, zdim=16, shape_dim=8, appearance_dim=4, shading_dim=3)


def tiny(variant: str = "dae", **kw: Any) -> Model:
    torch.manual_seed(0)
    return build_model(ModelConfig(variant=variant, **{**TINY, **kw})).eval()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def batch(mnist_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    ds = build_dataset("mnist", split="test", image_size=32, data_dir=mnist_dir, limit=60)
    items = [ds[i] for i in range(len(ds))]  # type: ignore[arg-type]
    return torch.stack([it["image"] for it in items]), torch.stack([it["label"] for it in items])


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("L"), dtype=np.float32)


@pytest.mark.parametrize(
    ("variant", "warp", "columns"),
    [
        ("dae", "integral", 4),
        ("dae", "affine+integral", 4),
        ("class-aware", "integral", 4),
        ("intrinsic", "integral", 6),
        ("autoencoder", "integral", 4),
    ],
)
def test_sample_sheet_has_one_row_per_image_and_a_column_per_output(
    tmp_path: Path, batch: Batch, variant: str, warp: str, columns: int
) -> None:
    x = batch[0][:5]
    with torch.no_grad():
        out = tiny(variant, warp=warp)(x)
    path = tmp_path / "s" / "sheet.png"  # parent folders are created
    figures.save_sample_sheet(x, out, path, max_rows=3)
    img = _png(path)
    assert img.shape == (round(100 * (figures.CELL_INCHES * 3 + 0.3)), round(100 * figures.CELL_INCHES * columns))
    assert img.std() > 10  # digits and lattice, not a blank page


def test_sample_sheet_rejects_mismatched_or_empty_input(tmp_path: Path, batch: Batch) -> None:
    x = batch[0][:4]
    with torch.no_grad():
        out = tiny()(x)
    with pytest.raises(ValueError, match="does not match"):
        figures.save_sample_sheet(x[:3], out, tmp_path / "a.png")
    with pytest.raises(ValueError, match="expected a batch"):
        figures.save_sample_sheet(x[0], out, tmp_path / "b.png")
    assert not (tmp_path / "a.png").exists()


def test_identity_grid_draws_straight_evenly_spaced_lines(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    ax = fig.subplots()
    figures.draw_grid(ax, identity_grid(32)[0], lines=5)
    rows = [np.asarray(line.get_xydata()) for line in ax.get_lines()[::2]]
    assert len(rows) == 5
    ys = [float(r[:, 1].mean()) for r in rows]
    assert all(np.ptp(r[:, 1]) < 1e-5 for r in rows)  # straight (constant y along each row)
    assert np.allclose(ys, np.linspace(0, 31, 5).round(), atol=1e-4)  # on pixel rows spread evenly over 32
    with pytest.raises(ValueError, match="grid"):
        figures.draw_grid(ax, torch.zeros(3, 8, 8))


def test_interpolation_strip_starts_at_a_and_ends_at_a_with_bs_factor(batch: Batch) -> None:
    model = tiny("class-aware")
    a, b = batch[0][0], batch[0][1]
    with torch.no_grad():
        rec_a = model(a[None]).reconstruction[0]
        la, lb = model.encode(a[None]), model.encode(b[None])
        mixed = Latents(shape=lb.shape, appearance=la.appearance, class_logits=la.class_logits)
        shape_b = model.decode(mixed, model.class_code(la)).reconstruction[0]
    shape = figures.interpolation_strip(model, a, b, "shape", steps=5)
    appearance = figures.interpolation_strip(model, a, b, "appearance", steps=5)
    assert shape.shape == (5, 1, 32, 32)
    assert torch.allclose(shape[0], rec_a, atol=1e-5) and torch.allclose(appearance[0], rec_a, atol=1e-5)
    assert torch.allclose(shape[-1], shape_b, atol=1e-5)
    assert not torch.allclose(shape[-1], appearance[-1], atol=1e-4)  # the two factors do different things


def test_interpolation_strip_refuses_a_factor_the_model_lacks(batch: Batch) -> None:
    x = batch[0]
    with pytest.raises(ValueError, match="no shape latent"):
        figures.interpolation_strip(tiny("autoencoder"), x[0], x[1], "shape")
    with pytest.raises(ValueError, match="no shading latent"):
        figures.interpolation_strip(tiny("dae"), x[0], x[1], "shading")
    with pytest.raises(ValueError, match="factor must be"):
        figures.interpolation_strip(tiny("dae"), x[0], x[1], "colour")


def test_alignment_panel_of_identical_images_warps_back_to_the_reconstruction(tmp_path: Path, batch: Batch) -> None:
    model = tiny()
    same = batch[0][:1].expand(6, -1, -1, -1).contiguous()
    panel = figures.alignment_panel(model, same)
    assert torch.allclose(panel["aligned"], panel["reconstructions"], atol=1e-5)  # mean grid = each grid
    assert torch.allclose(panel["mean_input"], same[0])
    figures.save_alignment_figure(panel, tmp_path / "align.png", title="same digit")
    assert _png(tmp_path / "align.png").std() > 5
    with pytest.raises(ValueError, match="lacks"):
        figures.save_alignment_figure({"inputs": same}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="warp"):
        figures.alignment_panel(tiny("autoencoder"), same)


def test_class_means_average_each_class_and_leave_missing_classes_black(batch: Batch) -> None:
    x, y = batch
    model = tiny()
    keep = y != 9
    mean_in, mean_tex = figures.class_means(model, x[keep], y[keep], 10)
    assert mean_in.shape == mean_tex.shape == (10, 1, 32, 32)
    assert torch.allclose(mean_in[3], x[y == 3].mean(0))
    assert float(mean_in[9].abs().sum()) == 0.0 and float(mean_tex[9].abs().sum()) == 0.0


def test_intrinsic_rows_and_image_grid(tmp_path: Path, batch: Batch) -> None:
    x = batch[0][:4]
    rows = figures.intrinsic_rows(tiny("intrinsic"), x)
    assert [name for name, _ in rows] == ["input", "albedo", "shading", "reconstruction"]
    assert all(images.shape == (4, 1, 32, 32) for _, images in rows)
    ragged = [*rows, ("short", x[:2])]
    figures.save_image_grid(ragged, tmp_path / "grid.png", title="t", column_labels=["a", "b", "c", "d"])
    img = _png(tmp_path / "grid.png")
    assert img.shape[0] == round(100 * (figures.CELL_INCHES * 5 + 0.55))
    with pytest.raises(ValueError, match="intrinsic"):
        figures.intrinsic_rows(tiny("dae"), x)
    with pytest.raises(ValueError, match="no rows"):
        figures.save_image_grid([], tmp_path / "empty.png")
