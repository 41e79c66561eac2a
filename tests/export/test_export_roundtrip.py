"""Round trip for every variant: checkpoint -> bundle -> onnxruntime, checked here independently of
``export.parity``: our own sessions, real MNIST test images, and the model's own ``forward``/``decode``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from bundle.manifest import file_sha256, load_manifest
from export.bundle import export_bundle
from tests.export.bundle_fixtures import REPO, VARIANTS, one_thread
from training.checkpoint import load_model
from training.data import build_dataset
from training.warp import identity_grid

Exported = Callable[[str], tuple[Path, Path, list[str]]]


def _sessions(bundle: Path) -> dict[str, ort.InferenceSession]:
    man = load_manifest(bundle)
    return {
        k: ort.InferenceSession(str(bundle / g.file), providers=["CPUExecutionProvider"]) for k, g in man.graphs.items()
    }


def _mnist(mnist_dir: Path, channels: int, n: int) -> np.ndarray:
    ds = build_dataset("mnist", split="test", image_size=32, channels=channels, data_dir=mnist_dir, limit=n)
    images: np.ndarray = torch.stack([ds[i]["image"] for i in range(n)]).numpy()
    return images


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    out: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def _run_chain(
    s: dict[str, ort.InferenceSession], images: np.ndarray, code: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The service's chain, written out by hand from the manifest's documented layout."""
    names = [o.name for o in s["encoder"].get_outputs()]
    out = dict(zip(names, s["encoder"].run(None, {"image": images}), strict=True))
    if "class_logits" in out:
        out["class_code"] = _softmax(out["class_logits"]) if code is None else code
    tex_in = {i.name: out[i.name] for i in s["texture"].get_inputs()}
    out.update(zip([o.name for o in s["texture"].get_outputs()], s["texture"].run(None, tex_in), strict=True))
    if "deformation" in s:
        d_in = {i.name: out[i.name] for i in s["deformation"].get_inputs()}
        out.update(
            zip(
                [o.name for o in s["deformation"].get_outputs()],
                s["deformation"].run(None, d_in),
                strict=True,
            )
        )
        w_in = {i.name: out[i.name] for i in s["warp"].get_inputs()}
        out.update(zip(["grid", "displacement", "reconstruction"], s["warp"].run(None, w_in), strict=True))
    else:  # a plain autoencoder's texture is its reconstruction
        out["reconstruction"] = out["texture"]
    return out


@pytest.mark.parametrize("key", list(VARIANTS))
def test_round_trip_matches_pytorch_on_real_mnist(key: str, exported: Exported, mnist_dir: Path) -> None:
    ckpt, bundle, _ = exported(key)
    model, _ = load_model(ckpt)
    cfg = model.cfg
    images = _mnist(mnist_dir, cfg.channels, 7)
    onnx_out = _run_chain(_sessions(bundle), images)
    with torch.no_grad(), one_thread():
        ref = model(torch.from_numpy(images))
    pairs = {
        "appearance": ref.latents.appearance,
        "texture": ref.texture,
        "reconstruction": ref.reconstruction,
    }
    if cfg.has_warp:
        pairs |= {"shape": ref.latents.shape, "increments": ref.increments, "grid": ref.grid}
    if cfg.variant == "intrinsic":
        pairs |= {"shading_latent": ref.latents.shading, "albedo": ref.albedo, "shading": ref.shading}
    if cfg.has_classes:
        pairs["class_logits"] = ref.latents.class_logits
    if cfg.warp == "affine+integral":
        pairs["affine"] = ref.affine
    for name, want in pairs.items():
        assert want is not None
        diff = np.abs(onnx_out[name] - want.numpy()).max()
        assert diff < 1e-4, f"{key}: {name} differs from PyTorch by {diff}"
    # The warp is not the identity and the outputs are not constant: the comparison above had content.
    assert onnx_out["reconstruction"].std() > 1e-3
    if cfg.has_warp:
        displacement = onnx_out["displacement"]
        assert np.abs(displacement).max() > 1e-2
        identity = np.broadcast_to(identity_grid(32).numpy(), displacement.shape)
        np.testing.assert_allclose(onnx_out["grid"] - displacement, identity, atol=1e-6)  # grid - W0


@pytest.mark.parametrize("key", ["dae", "class-aware"])
def test_batch_results_equal_single_image_results(key: str, exported: Exported, mnist_dir: Path) -> None:
    _, bundle, _ = exported(key)
    sessions = _sessions(bundle)
    images = _mnist(mnist_dir, 1, 7)
    batched = _run_chain(sessions, images)
    for i in range(len(images)):
        single = _run_chain(sessions, images[i : i + 1])
        diff = np.abs(single["reconstruction"][0] - batched["reconstruction"][i]).max()
        assert diff < 1e-5, f"image {i}: batch-of-7 result differs from its single-image result by {diff}"


def test_class_aware_decoders_take_an_explicit_class_code(exported: Exported, mnist_dir: Path) -> None:
    ckpt, bundle, _ = exported("class-aware")
    model, _ = load_model(ckpt)
    images = _mnist(mnist_dir, 1, 4)
    seven = np.zeros((4, 10), dtype=np.float32)
    seven[:, 7] = 1.0
    onnx_out = _run_chain(_sessions(bundle), images, code=seven)
    with torch.no_grad():
        ref = model(torch.from_numpy(images), class_override=torch.full((4,), 7))
    assert np.abs(onnx_out["reconstruction"] - ref.reconstruction.numpy()).max() < 1e-4
    default = _run_chain(_sessions(bundle), images)  # softmax(logits): a different code, a different texture
    assert np.abs(default["texture"] - onnx_out["texture"]).max() > 1e-3


@pytest.mark.parametrize("key", list(VARIANTS))
def test_manifest_describes_the_bundle(key: str, exported: Exported) -> None:
    ckpt, bundle, _ = exported(key)
    model, _ = load_model(ckpt)
    cfg = model.cfg
    man = load_manifest(bundle)
    assert (man.variant, man.image_size, man.channels, man.opset) == (cfg.variant, 32, cfg.channels, 17)
    expected_graphs = ["encoder", "texture"] + (
        [] if cfg.variant == "autoencoder" else ["deformation", "warp", "decoder"]
    )
    assert sorted(man.graphs) == sorted(expected_graphs)
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        [f"{g}.onnx" for g in expected_graphs] + ["manifest.json"]
    )
    for key_, g in man.graphs.items():
        assert g.sha256 == file_sha256(bundle / g.file)
        proto = onnx.load(str(bundle / g.file))
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
        for v in list(proto.graph.input) + list(proto.graph.output):
            assert v.type.tensor_type.shape.dim[0].dim_param == "batch", (key_, v.name)
        assert all(t.shape[0] == "batch" for t in g.inputs + g.outputs)
    lat = {x.name: x.size for x in man.latents}
    if cfg.variant == "autoencoder":
        assert lat == {"appearance": cfg.total_latent_dim} and man.warp is None
    else:
        assert lat["shape"] == cfg.shape_dim and lat["appearance"] == cfg.appearance_dim
        assert man.warp is not None
        assert (man.warp.increment_scale, man.warp.offset, man.warp.clamp) == (5.0, 1.2, 1.0)
        assert man.warp.affine == (cfg.warp == "affine+integral")
    assert man.class_names == (list("abcdefghij") if cfg.has_classes else [])
    pre = man.preprocessing
    assert (pre.color_mode, pre.channel_order) == (("RGB", "RGB") if cfg.channels == 3 else ("L", "gray"))
    prov = man.provenance
    assert (prov.data, prov.epochs, prov.steps, prov.seed) == ("mnist", 2, 123, 7)
    assert prov.metrics == {"test_reconstruction": 0.125, "test_total": 0.25}  # the NaN one is dropped
    assert prov.train_command == "python -m training fit --data mnist --epochs 2"
    assert prov.export_command is not None and "--checkpoint" in prov.export_command
    # Others commit to this checkout while tests run: the recorded commit must be HEAD or one of its ancestors.
    assert prov.git_commit is not None and len(prov.git_commit) == 40
    ancestor = ["git", "merge-base", "--is-ancestor", prov.git_commit, "HEAD"]
    assert subprocess.run(ancestor, cwd=REPO, capture_output=True, check=False).returncode == 0
    assert json.loads((bundle / "manifest.json").read_text())["format_version"] == 1


def test_progress_has_a_line_per_stage(exported: Exported) -> None:
    lines = exported("dae")[2]
    text = "\n".join(lines)
    for stage in (
        "loaded",
        "wrote encoder.onnx",
        "wrote warp.onnx",
        "wrote manifest.json",
        "sha256",
        "onnx.checker ok",
        "inputs/outputs match",
        "real inputs",
        "parity ok",
        "bundle ready",
    ):
        assert stage in text, f"no progress line for {stage!r}"


def test_classnames_default_to_indices(make_checkpoint: Callable[..., Path], tmp_path: Path) -> None:
    ckpt = make_checkpoint(variant="class-aware", num_classes=3)
    with one_thread():
        man = export_bundle(ckpt, tmp_path / "b", verify=False, progress=None)
    assert man.class_names == ["0", "1", "2"]
    assert man.graphs["encoder"].outputs[-1].shape == ["batch", 3]
