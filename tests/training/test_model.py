"""Model shapes, gradients, class override, checkpoint round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from training.checkpoint import load_model, save_checkpoint
from training.config import ModelConfig
from training.losses import dae_loss
from training.model import ClassAwareDAE, IntrinsicDAE, PlainAutoencoder, build_model

TINY: dict[str, Any] = {"ndf": 8, "ngf": 8}


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("variant", ["dae", "class-aware", "intrinsic", "autoencoder"])
def test_shapes(variant: str, size: int, channels: int) -> None:
    cfg = ModelConfig(variant=variant, image_size=size, channels=channels, **TINY)  # type: ignore[arg-type]
    model = build_model(cfg).eval()
    with torch.no_grad():
        out = model(torch.rand(2, channels, size, size))
    assert out.reconstruction.shape == (2, channels, size, size)
    assert out.texture.shape == (2, channels, size, size)
    assert out.latents.appearance.shape[1] == (cfg.total_latent_dim if variant == "autoencoder" else 16)
    if variant != "autoencoder":
        assert out.grid is not None and out.grid.shape == (2, 2, size, size)
        assert out.latents.shape.shape == (2, 128)
        assert float(out.texture.min()) >= 0 and float(out.texture.max()) <= 1
    if variant == "class-aware":
        assert out.latents.class_logits is not None and out.latents.class_logits.shape == (2, 10)
    if variant == "intrinsic":
        assert out.shading is not None and out.shading.shape == (2, 1, size, size)
        assert out.albedo is not None and torch.allclose(out.texture, out.albedo * out.shading)


@pytest.mark.parametrize(
    ("variant", "warp"),
    [
        ("dae", "integral"),
        ("dae", "affine+integral"),
        ("class-aware", "integral"),
        ("intrinsic", "integral"),
        ("autoencoder", "integral"),
    ],
)
@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_gradients_reach_every_parameter(variant: str, warp: str, norm: str) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(variant=variant, warp=warp, norm=norm, image_size=32, **TINY)  # type: ignore[arg-type]
    model = build_model(cfg)
    x = torch.rand(4, 1, 32, 32)
    labels = torch.tensor([0, 1, 2, 3])
    loss, _ = dae_loss(model(x, labels=labels), x, labels=labels)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    zero = [n for n, p in model.named_parameters() if p.grad is not None and float(p.grad.abs().sum()) == 0.0]
    assert not missing and not zero, (missing, zero)


def test_affine_head_starts_at_the_identity() -> None:
    model = build_model(ModelConfig(warp="affine+integral", image_size=32, **TINY)).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 32, 32))
    assert out.affine is not None
    assert torch.allclose(out.affine, torch.tensor([[1.0, 0, 0, 0, 1.0, 0]] * 2))


def test_class_override_decodes_a_chosen_class() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(variant="class-aware", image_size=32, **TINY)).eval()
    assert isinstance(model, ClassAwareDAE)
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        as7 = model(x, class_override=torch.tensor([7, 7, 7]))
        onehot7 = model(x, class_override=torch.nn.functional.one_hot(torch.tensor([7, 7, 7]), 10).float())
        as2 = model(x, class_override=torch.tensor([2, 2, 2]))
        predicted = model(x)
    assert torch.allclose(as7.reconstruction, onehot7.reconstruction)
    assert not torch.allclose(as7.texture, as2.texture)
    assert not torch.allclose(as7.grid, as2.grid)
    code = model.class_code(model.encode(x))
    assert torch.allclose(code.sum(1), torch.ones(3)) and not torch.allclose(predicted.texture, as7.texture)


def test_classes_types() -> None:
    assert isinstance(build_model(ModelConfig(variant="intrinsic", image_size=32, **TINY)), IntrinsicDAE)
    assert isinstance(build_model(ModelConfig(variant="autoencoder", image_size=32, **TINY)), PlainAutoencoder)
    with pytest.raises(ValueError, match="image_size"):
        ModelConfig(image_size=48)


def test_a_white_albedo_still_learns_with_the_sigmoid_output_and_not_with_hardtanh() -> None:
    # Push every albedo pixel far above 1 (a white albedo) and ask for a coloured image: Hardtanh(0, 1) passes
    # no gradient back into the albedo decoder, a sigmoid does. Old checkpoints (no albedo_output) keep Hardtanh.
    x = torch.rand(2, 3, 32, 32)
    target = torch.zeros(2, 3, 32, 32)
    target[:, 0] = 1.0
    grads = {}
    for output in ("hardtanh", "sigmoid"):
        torch.manual_seed(0)
        model = build_model(ModelConfig(variant="intrinsic", image_size=32, channels=3, albedo_output=output, **TINY))
        assert isinstance(model, IntrinsicDAE)
        last = [m for m in model.albedo.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1]
        last.register_forward_hook(lambda _m, _i, out: out + 6.0)  # pre-activation ~6 everywhere: white
        out = model(x)
        assert out.albedo is not None and float(out.albedo.detach().min()) > 0.99
        ((out.reconstruction - target) ** 2).mean().backward()
        grads[output] = float(last.weight.grad.abs().sum()) if last.weight.grad is not None else 0.0
    assert grads["hardtanh"] == 0.0 and grads["sigmoid"] > 0.0
    cfg = ModelConfig(variant="intrinsic", image_size=32, albedo_output="sigmoid").to_dict()
    del cfg["albedo_output"]
    assert ModelConfig.from_dict(cfg).albedo_output == "hardtanh"
    with pytest.raises(ValueError, match="albedo_output"):
        ModelConfig(variant="intrinsic", albedo_output="relu")  # type: ignore[arg-type]


def test_a_shading_floor_leaves_black_pixels_to_the_albedo() -> None:
    # With a floor the shading can no longer be 0, so a black pixel can only be a black albedo; the floor maps
    # the decoder's [0, 1] onto [floor, 1] (the same weights, the same shading up to that map).
    x = torch.rand(4, 1, 32, 32)
    shadings = {}
    for floor in (0.0, 0.05):
        torch.manual_seed(0)
        model = build_model(ModelConfig(variant="intrinsic", image_size=32, shading_floor=floor, **TINY)).eval()
        assert isinstance(model, IntrinsicDAE)
        last = [m for m in model.shading_decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1]
        last.register_forward_hook(lambda _m, _i, out: out - 10.0)  # pre-activation far below 0: black
        with torch.no_grad():
            out = model(x)
        assert out.shading is not None and out.albedo is not None
        torch.testing.assert_close(out.texture, out.albedo * out.shading)
        shadings[floor] = out.shading
    assert float(shadings[0.0].max()) == 0.0
    torch.testing.assert_close(shadings[0.05], torch.full_like(shadings[0.05], 0.05))
    cfg = ModelConfig(variant="intrinsic", image_size=32, shading_floor=0.05).to_dict()
    del cfg["shading_floor"]
    assert ModelConfig.from_dict(cfg).shading_floor == 0.0  # checkpoints from before the option
    with pytest.raises(ValueError, match="shading_floor"):
        ModelConfig(variant="intrinsic", shading_floor=1.0)


def test_plain_autoencoder_has_the_same_encoder_and_total_latent() -> None:
    dae = ModelConfig(image_size=32)
    ae = build_model(ModelConfig(variant="autoencoder", image_size=32))
    ref = build_model(dae)
    assert [p.shape for p in ae.encoder.parameters()] == [p.shape for p in ref.encoder.parameters()]
    assert ae.encode(torch.rand(1, 1, 32, 32)).appearance.shape[1] == dae.appearance_dim + dae.shape_dim


@pytest.mark.parametrize("variant", ["dae", "class-aware", "intrinsic", "autoencoder"])
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path: Path, variant: str) -> None:
    torch.manual_seed(1)
    cfg = ModelConfig(variant=variant, image_size=32, norm="batch", **TINY)  # type: ignore[arg-type]
    model = build_model(cfg)
    x = torch.rand(4, 1, 32, 32)
    model(x, labels=torch.tensor([1, 2, 3, 4]))  # move the BatchNorm running stats off their init
    model.eval()
    save_checkpoint(tmp_path / "last.pt", model, cfg, train_config={"data": "none"})
    loaded, state = load_model(tmp_path / "last.pt")
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a.reconstruction, b.reconstruction)
    assert state["model_config"] == cfg.to_dict() and not loaded.training


def test_eval_outputs_do_not_depend_on_the_batch() -> None:
    # The release tested in train mode; in eval() one image's output must not depend on its batch-mates.
    torch.manual_seed(2)
    model = build_model(ModelConfig(image_size=32, norm="batch", **TINY))
    model(torch.rand(8, 1, 32, 32))
    model.eval()
    x = torch.rand(6, 1, 32, 32)
    with torch.no_grad():
        full = model(x).reconstruction
        single = torch.cat([model(x[i : i + 1]).reconstruction for i in range(6)])
    assert (full - single).abs().max() < 1e-5
