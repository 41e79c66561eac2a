"""Evaluation metrics on cases whose answer is known, on real models and real MNIST / synthetic data.

.venv/bin/python -m pytest tests/training/test_evaluate.py -q
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from training.__main__ import main as cli
from training.checkpoint import save_checkpoint
from training.config import ModelConfig
from training.data import build_dataset
from training.evaluate import evaluate
from training.metrics import (
    alignment_ratio,
    epe_px,
    same_class_partners,
    scale_invariant_mse,
    template_purity,
)
from training.model import ClassAwareDAE, DeformingAutoencoder, Model, build_model
from training.warp import identity_grid

Items = list[dict[str, torch.Tensor]]
TINY: dict[str, Any] = dict(image_size=32, ndf=8, ngf=8, zdim=16, shape_dim=8, appearance_dim=4, shading_dim=3)


def tiny(variant: str = "dae", **kw: Any) -> Model:
    torch.manual_seed(0)
    return build_model(ModelConfig(variant=variant, **{**TINY, **kw})).eval()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def digits(mnist_dir: Path) -> list[dict[str, torch.Tensor]]:
    ds = build_dataset("mnist", split="test", image_size=32, data_dir=mnist_dir, limit=200)
    return [ds[i] for i in range(len(ds))]  # type: ignore[arg-type]


def _stack(items: list[dict[str, torch.Tensor]], key: str) -> torch.Tensor:
    return torch.stack([it[key] for it in items])


# -- the metric functions ------------------------------------------------------------------------------
def test_alignment_is_zero_for_identical_textures_and_one_when_textures_are_the_inputs(digits: Items) -> None:
    x, y = _stack(digits, "image"), _stack(digits, "label")
    one_template = torch.stack([x[y == int(c)][0] for c in y])  # every texture = its class's first digit
    assert alignment_ratio(one_template, x, y) == 0.0
    assert alignment_ratio(x, x, y) == pytest.approx(1.0)
    assert alignment_ratio(0.5 * x, x, y) == pytest.approx(0.25)  # variance scales with the square
    same = x[:1].expand(10, -1, -1, -1)
    assert alignment_ratio(same, same, torch.zeros(10, dtype=torch.long)) == 0.0  # identical images: 0


def test_template_purity_sees_classes_that_share_one_template(digits: Items) -> None:
    x, y = _stack(digits, "image"), _stack(digits, "label")
    shared = x[:1].expand_as(x)  # one template for every class: perfectly "aligned", but no classes left
    assert alignment_ratio(shared, x, y) == 0.0 and template_purity(shared, x, y) == pytest.approx(0.1)
    assert template_purity(x, x, y) == 1.0  # textures = inputs: every class mean is its own
    means = {int(c): x[y == c].mean(0) for c in y.unique()}
    own = torch.stack([means[int(c)] for c in y])  # each class its own (mean) template: aligned and pure
    assert alignment_ratio(own, x, y) == 0.0 and template_purity(own, x, y) == 1.0


def test_alignment_needs_two_images_of_a_class() -> None:
    with pytest.raises(ValueError, match="two images"):
        alignment_ratio(torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 2]))


def test_grid_error_in_pixels() -> None:
    g = identity_grid(32)
    assert epe_px(g, g) == 0.0
    one_px = 2.0 / 31
    shifted = g + torch.tensor([one_px, 0.0])[None, :, None, None]
    assert epe_px(shifted, g) == pytest.approx(1.0, abs=1e-5)
    diag = g + torch.tensor([3 * one_px, 4 * one_px])[None, :, None, None]
    assert epe_px(diag, g) == pytest.approx(5.0, abs=1e-4)
    with pytest.raises(ValueError, match="differ in shape"):
        epe_px(g, identity_grid(16))


def test_scale_invariant_mse_ignores_a_per_image_scale() -> None:
    t = torch.rand(4, 1, 8, 8)
    scaled = t * torch.tensor([0.5, 2.0, 3.0, 0.1])[:, None, None, None]
    assert scale_invariant_mse(scaled, t) == pytest.approx(0.0, abs=1e-10)
    assert scale_invariant_mse(torch.rand(4, 1, 8, 8), t) > 1e-3


def test_scale_invariant_mse_over_a_mask_sees_only_the_masked_pixels() -> None:
    t = torch.rand(3, 3, 8, 8) + 0.1
    where = torch.zeros(3, 1, 8, 8, dtype=torch.bool)
    where[:, :, 2:6, 2:6] = True
    pred = torch.where(where, 2.5 * t, torch.rand(3, 3, 8, 8))  # right up to scale inside, noise outside
    assert scale_invariant_mse(pred, t, where) == pytest.approx(0.0, abs=1e-10)
    assert scale_invariant_mse(pred, t) > 1e-3
    # The mean is over the masked pixels: a constant error of 0.1 inside gives 0.01 whatever the mask's size.
    off = torch.where(where, t + 0.1, t)
    err = scale_invariant_mse(torch.ones_like(t), off - t, where)  # pred = 1, target = 0.1 inside
    assert err == pytest.approx(0.0, abs=1e-10)  # a constant is a scaled constant
    assert scale_invariant_mse(torch.zeros_like(t), off - t, where) == pytest.approx(0.01, rel=1e-5)
    assert scale_invariant_mse(t, t, torch.ones_like(where)) == pytest.approx(scale_invariant_mse(t, t), abs=1e-12)


def test_swap_partners_share_the_class_and_are_other_images() -> None:
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3])
    p = same_class_partners(labels, seed=1)
    assert torch.equal(labels[p], labels)
    alone = torch.tensor([6, 3])  # the only 3 and the only 2 pair with themselves
    assert torch.equal(p[alone], alone)
    others = torch.tensor([0, 1, 2, 4, 5])
    assert bool((p[others] != others).all())
    assert sorted(p.tolist()) == list(range(7))  # a permutation: every image is some image's partner


# -- evaluate() on real models -------------------------------------------------------------------------
def test_a_texture_decoder_that_outputs_black_gives_known_metrics(digits: Items) -> None:
    model = tiny()
    assert isinstance(model, DeformingAutoencoder)
    final = model.texture.net[-2]
    assert isinstance(final, nn.ConvTranspose2d)
    nn.init.zeros_(final.weight)  # texture = Hardtanh(0) = 0 everywhere → reconstruction is black
    m = evaluate(model, digits, batch_size=64)
    x = _stack(digits, "image")
    assert m["recon_mse"] == pytest.approx(float((x**2).mean()), rel=1e-5)
    assert m["recon_l1"] == pytest.approx(float(x.mean()), rel=1e-5)
    assert m["texture_variance"] == 0.0 and m["alignment"] == 0.0
    assert m["input_variance"] > 0.01
    assert m["images"] == len(digits)


def test_metrics_do_not_depend_on_the_batch_size(digits: Items) -> None:
    model = tiny()
    a, b = evaluate(model, digits, batch_size=200), evaluate(model, digits, batch_size=37)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-9), k


def test_untrained_model_has_every_dae_metric_finite_and_in_range(digits: Items) -> None:
    m = evaluate(tiny(), digits)
    for k in (
        "recon_mse",
        "recon_l1",
        "alignment",
        "alignment_scale_free",
        "swap_shape_error",
        "swap_appearance_error",
        "swap_shape_rel",
        "swap_appearance_rel",
    ):
        assert 0.0 <= m[k] < float("inf"), k
    assert m["swap_shape_error"] > 0  # decoding B's appearance changes the image: not a tautology
    assert "accuracy" not in m and "deformation_error_px" not in m  # MNIST: no classifier, no ground truth


def test_constant_latent_heads_make_the_swap_exactly_consistent(digits: Items) -> None:
    model = tiny()
    assert isinstance(model, DeformingAutoencoder)
    for head in (model.to_shape[0], model.to_appearance[0]):
        assert isinstance(head, nn.Linear)
        nn.init.zeros_(head.weight)  # every image gets the same codes; so does the re-encoded swap
    m = evaluate(model, digits)
    assert m["swap_shape_error"] == pytest.approx(0.0, abs=1e-12)
    assert m["swap_appearance_error"] == pytest.approx(0.0, abs=1e-12)
    assert m["swap_shape_rel"] == 0.0


def test_plain_autoencoder_reports_only_what_applies(digits: Items) -> None:
    m = evaluate(tiny("autoencoder"), digits)
    assert {"recon_mse", "recon_l1"} <= m.keys()
    assert not {"alignment", "swap_shape_rel", "accuracy"} & m.keys()


def test_class_aware_accuracy_counts_argmax_against_labels(digits: Items) -> None:
    model = tiny("class-aware")
    assert isinstance(model, ClassAwareDAE)
    head = model.to_class
    nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.copy_(torch.arange(10.0) == 7)  # always predicts 7
    m = evaluate(model, digits)
    share_of_sevens = float((_stack(digits, "label") == 7).float().mean())
    assert m["accuracy"] == pytest.approx(share_of_sevens)


class _GroundTruth(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Synthetic items whose ground truth is replaced by the model's own outputs (the answer is then 0)."""

    def __init__(self, model: Model, items: list[dict[str, torch.Tensor]]) -> None:
        x = _stack(items, "image")
        with torch.no_grad():
            out = model(x)
        assert out.grid is not None
        self.items = []
        for i, it in enumerate(items):
            extra = {"grid": out.grid[i], "texture": out.texture[i]}
            if out.albedo is not None and out.shading is not None:
                extra |= {"albedo": out.albedo[i] * 2.0, "shading": out.shading[i] / 2.0}  # same product
            self.items.append({**it, **extra})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.items[i]


@pytest.mark.parametrize("variant", ["dae", "intrinsic"])
def test_ground_truth_errors_are_zero_when_the_model_recovers_it(variant: str) -> None:
    data = "synthetic-lit" if variant == "intrinsic" else "synthetic"
    ds = build_dataset(data, split="test", image_size=32, limit=40)
    items = [ds[i] for i in range(len(ds))]  # type: ignore[arg-type]
    model = tiny(variant)
    real = evaluate(model, items)
    assert real["deformation_error_px"] > 0.1 and real["deformation_error_identity_px"] > 0.1
    oracle = evaluate(model, _GroundTruth(model, items))
    assert oracle["deformation_error_px"] == pytest.approx(0.0, abs=1e-4)
    assert oracle["deformation_epe_centred_visible_px"] == pytest.approx(0.0, abs=1e-4)
    assert real["deformation_epe_zero_visible_px"] > 0.1  # the truth does move the visible pixels
    assert oracle["texture_mse"] == pytest.approx(0.0, abs=1e-10)
    if variant == "intrinsic":
        assert oracle["albedo_si_mse"] == pytest.approx(0.0, abs=1e-10)  # off by 2x, scale-invariant: 0
        assert oracle["shading_si_mse"] == pytest.approx(0.0, abs=1e-10)
        assert oracle["albedo_mse"] > 0  # the plain MSE sees the factor 2


def test_empty_dataset_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        evaluate(tiny(), [])


# -- the CLI ---------------------------------------------------------------------------------------------
def test_cli_writes_metrics_json_for_a_checkpoint(tmp_path: Path, mnist_dir: Path) -> None:
    model = tiny("class-aware")
    ckpt = tmp_path / "run" / "last.pt"
    save_checkpoint(ckpt, model, model.cfg, train_config={"data": "mnist", "data_dir": str(mnist_dir)}, step=3)
    out = tmp_path / "metrics.json"
    assert cli(["evaluate", "--checkpoint", str(ckpt), "--limit", "64", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["variant"] == "class-aware" and report["data"] == "mnist" and report["step"] == 3
    assert report["metrics"]["images"] == 64
    assert 0.0 <= report["metrics"]["accuracy"] <= 1.0


def test_cli_reports_a_missing_checkpoint_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["evaluate", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_visible_is_the_content_grown_by_the_radius() -> None:
    from training.metrics import visible

    images = torch.zeros(1, 3, 16, 16)
    images[0, 2, 8, 8] = 1.0  # one bright pixel in one channel
    seen = visible(images, radius=2)
    assert seen.shape == (1, 16, 16) and int(seen.sum()) == 25  # a 5x5 square around it
    assert bool(seen[0, 6, 6]) and bool(seen[0, 10, 10]) and not bool(seen[0, 5, 8])
    assert int(visible(torch.zeros(1, 1, 8, 8)).sum()) == 0
