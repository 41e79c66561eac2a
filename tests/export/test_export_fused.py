"""The fused decoder graph (texture + deformation + warp in one ONNX graph): exported next to the three graphs,
verified against them and against PyTorch, optional in a manifest (older bundles still verify and serve)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bundle.manifest import load_manifest
from export.parity import PARITY_TOL
from export.verify import verify_bundle
from tests.export.bundle_fixtures import one_thread

Exported = Callable[[str], tuple[Path, Path, list[str]]]


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("key", ["class-aware", "dae-affine", "intrinsic-rgb"])
def test_fused_decoder_equals_the_three_graphs(key: str, exported: Exported) -> None:
    _, bundle, _ = exported(key)
    man = load_manifest(bundle)
    spec = man.graphs["decoder"]
    split = {k: _session(bundle / man.graphs[k].file) for k in ("texture", "deformation", "warp")}
    fused = _session(bundle / spec.file)
    rng = np.random.default_rng(0)
    feeds = {t.name: rng.normal(size=(5, *(int(d) for d in t.shape[1:]))).astype(np.float32) for t in spec.inputs}
    if "class_code" in feeds:
        feeds["class_code"] = np.eye(len(man.class_names), dtype=np.float32)[[0, 3, 7, 1, 9]]
    pool = dict(feeds)
    for s in split.values():
        pool.update(
            zip(
                [o.name for o in s.get_outputs()],
                s.run(None, {i.name: pool[i.name] for i in s.get_inputs()}),
                strict=True,
            )
        )
    got = dict(zip([o.name for o in fused.get_outputs()], fused.run(None, feeds), strict=True))
    assert set(got) == {t.name for t in spec.outputs} and "reconstruction" in got and "grid" in got
    for name, value in got.items():
        np.testing.assert_allclose(value, pool[name], atol=PARITY_TOL, err_msg=name)


def test_verify_reports_fused_parity_rows(exported: Exported, mnist_dir: Path) -> None:
    ckpt, bundle, _ = exported("class-aware")
    with one_thread():
        report = verify_bundle(bundle, checkpoint=ckpt, data_dir=mnist_dir, progress=None, batches=(1, 7))
    fused = [r for r in report.rows if r.check == "fused-vs-split"]
    assert {r.output for r in fused} == {t.name for t in report.manifest.graphs["decoder"].outputs}
    assert all(r.ok for r in fused)
    assert any(r.check == "onnx-vs-torch" and r.graph == "decoder" for r in report.rows)


def test_a_bundle_without_the_fused_graph_still_verifies(exported: Exported, tmp_path: Path) -> None:
    """Bundles exported before the fused graph existed (e.g. the committed models/mnist) keep working."""
    _, bundle, _ = exported("dae")
    old = tmp_path / "old"
    shutil.copytree(bundle, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["graphs"]["decoder"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    (old / "decoder.onnx").unlink()
    report = verify_bundle(old, progress=None)
    assert "decoder" not in report.manifest.graphs
