"""verify_bundle: checksums, manifest vs ONNX disagreements (named in the message), parity that can fail,
and the exporter's failure paths (out untouched, stale graphs removed, clear errors)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from bundle.manifest import BundleError, file_sha256, load_manifest
from export.bundle import export_bundle
from export.errors import ExportError, ParityError
from export.parity import BATCH_TOL, PARITY_TOL
from export.verify import verify_bundle
from tests.export.bundle_fixtures import one_thread

Exported = Callable[[str], tuple[Path, Path, list[str]]]
Copy = Callable[[str], Path]


def _edit_manifest(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _verify(bundle: Path, **kw: Any) -> Any:
    with one_thread():
        return verify_bundle(bundle, progress=None, **kw)


def test_verified_parity_table_covers_every_output_batch_and_input(exported: Exported, mnist_dir: Path) -> None:
    ckpt, bundle, _ = exported("intrinsic-rgb")
    lines: list[str] = []
    with one_thread():
        report = verify_bundle(bundle, checkpoint=ckpt, data_dir=mnist_dir, progress=lines.append)
    man = report.manifest
    outputs = {(k, t.name) for k, g in man.graphs.items() for t in g.outputs}
    for inputs in ("random", "real"):
        for batch in (1, 7, 64):
            got = {
                (r.graph, r.output)
                for r in report.rows
                if (r.check, r.inputs, r.batch) == ("onnx-vs-torch", inputs, batch)
            }
            assert got == outputs, (inputs, batch)
            assert any(r.check == "pipeline" and (r.inputs, r.batch) == (inputs, batch) for r in report.rows)
        single = {
            (r.graph, r.output, r.batch) for r in report.rows if (r.check, r.inputs) == ("batch-vs-single", inputs)
        }
        assert single == {(g, o, b) for g, o in outputs for b in (7, 64)}
    assert all(r.ok for r in report.rows)
    assert report.worst("onnx-vs-torch") < PARITY_TOL and report.worst("batch-vs-single") < BATCH_TOL
    assert report.real_source is not None and "mnist test split" in report.real_source
    assert "max abs diff" in report.table and "albedo" in report.table
    assert any(line.startswith("[verify] parity ok") for line in lines)


def test_unmodified_bundle_verifies_without_a_checkpoint(exported: Exported) -> None:
    report = _verify(exported("dae")[1])
    assert report.rows == [] and report.manifest.variant == "dae"


@pytest.mark.parametrize("graph", ["encoder", "warp"])
def test_tampered_graph_file_fails_by_checksum(graph: str, bundle_copy: Copy) -> None:
    bundle = bundle_copy("dae")
    path = bundle / f"{graph}.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, somewhere in the weights
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"graph '{graph}': checksum mismatch for {graph}\.onnx"):
        _verify(bundle)


def test_missing_graph_file_is_named(bundle_copy: Copy) -> None:
    bundle = bundle_copy("dae")
    (bundle / "deformation.onnx").unlink()
    with pytest.raises(BundleError, match=r"graph 'deformation': file deformation\.onnx is missing"):
        _verify(bundle)


def test_swapped_graph_files_fail_by_checksum(bundle_copy: Copy) -> None:
    bundle = bundle_copy("dae")
    a, b = (bundle / "texture.onnx").read_bytes(), (bundle / "deformation.onnx").read_bytes()
    (bundle / "texture.onnx").write_bytes(b)
    (bundle / "deformation.onnx").write_bytes(a)
    with pytest.raises(BundleError, match="checksum mismatch"):
        _verify(bundle)


def test_manifest_latent_size_disagreeing_with_onnx_is_rejected(bundle_copy: Copy) -> None:
    bundle = bundle_copy("dae")

    def grow(d: dict[str, Any]) -> None:
        for lat in d["latents"]:
            if lat["name"] == "appearance":
                lat["size"] = 17

    _edit_manifest(bundle, grow)
    with pytest.raises(BundleError) as e:
        _verify(bundle)
    msg = str(e.value)
    assert "'appearance'" in msg and "['batch', 16]" in msg and "['batch', 17]" in msg, msg
    assert "'appearance': 17" in msg  # the header value that disagrees is quoted


def test_manifest_tensor_shape_disagreeing_with_onnx_is_rejected(bundle_copy: Copy) -> None:
    bundle = bundle_copy("dae")
    _edit_manifest(bundle, lambda d: d["graphs"]["encoder"]["outputs"][1].update(shape=["batch", 17]))
    with pytest.raises(
        BundleError,
        match=r"graph 'encoder': output 'appearance' has shape \['batch', 16\] in the "
        r"ONNX file, manifest says \['batch', 17\]",
    ):
        _verify(bundle)


def test_manifest_tensor_name_disagreeing_with_onnx_is_rejected(bundle_copy: Copy) -> None:
    bundle = bundle_copy("dae")
    _edit_manifest(bundle, lambda d: d["graphs"]["deformation"]["inputs"][0].update(name="shape_latent"))
    with pytest.raises(BundleError) as e:
        _verify(bundle)
    msg = str(e.value)
    assert "graph 'deformation'" in msg and "['shape_latent']" in msg and "['shape']" in msg, msg


def test_manifest_class_names_disagreeing_with_onnx_are_rejected(bundle_copy: Copy) -> None:
    bundle = bundle_copy("class-aware")
    _edit_manifest(bundle, lambda d: d["class_names"].pop())
    with pytest.raises(
        BundleError,
        match=r"output 'class_logits' is float32\['batch', 10\] in the ONNX file.*"
        r"9 class names.*implies float32\['batch', 9\]",
    ):
        _verify(bundle)


def test_manifest_image_size_disagreeing_with_onnx_is_rejected(bundle_copy: Copy) -> None:
    bundle = bundle_copy("autoencoder")
    _edit_manifest(bundle, lambda d: d.update(image_size=64))
    with pytest.raises(BundleError, match=r"input 'image' is float32\['batch', 1, 32, 32\].*image_size=64"):
        _verify(bundle)


def test_manifest_dropping_the_affine_flag_is_rejected(bundle_copy: Copy) -> None:
    bundle = bundle_copy("dae-affine")
    _edit_manifest(bundle, lambda d: d["warp"].update(affine=False))
    with pytest.raises(BundleError, match=r"graph 'deformation'.*\['increments', 'affine'\].*\['increments'\]"):
        _verify(bundle)


def test_manifest_opset_disagreeing_with_onnx_is_rejected(bundle_copy: Copy) -> None:
    bundle = bundle_copy("autoencoder")
    _edit_manifest(bundle, lambda d: d.update(opset=18))
    with pytest.raises(BundleError, match=r"encoder\.onnx uses opset 17, manifest says 18"):
        _verify(bundle)


def test_onnx_file_with_renamed_output_and_fixed_checksum_is_rejected(bundle_copy: Copy) -> None:
    # Someone edits the graph *and* updates the checksum: the I/O check still catches the disagreement.
    bundle = bundle_copy("dae")
    proto = onnx.load(str(bundle / "warp.onnx"))
    old = proto.graph.output[1].name
    for node in proto.graph.node:
        node.output[:] = ["disp" if o == old else o for o in node.output]
    proto.graph.output[1].name = "disp"
    onnx.save(proto, str(bundle / "warp.onnx"))
    _edit_manifest(bundle, lambda d: d["graphs"]["warp"].update(sha256=file_sha256(bundle / "warp.onnx")))
    with pytest.raises(
        BundleError,
        match=r"graph 'warp': manifest lists outputs \['grid', 'displacement', "
        r"'reconstruction'\], the ONNX file has \['grid', 'disp', 'reconstruction'\]",
    ):
        _verify(bundle)


def test_parity_fails_against_a_different_model(
    exported: Exported, make_checkpoint: Callable[..., Path], mnist_dir: Path
) -> None:
    _, bundle, _ = exported("dae")
    other = make_checkpoint(seed=1, variant="dae")  # same architecture, other weights
    with pytest.raises(ParityError, match=r"parity check\(s\) failed") as e:
        _verify(bundle, checkpoint=other, data_dir=mnist_dir)
    assert "onnx-vs-torch" in str(e.value) and "NO" in str(e.value)


def test_checkpoint_of_another_architecture_is_refused(
    exported: Exported, make_checkpoint: Callable[..., Path], mnist_dir: Path
) -> None:
    _, bundle, _ = exported("dae")
    with pytest.raises(BundleError, match="is not this bundle's model"):
        _verify(bundle, checkpoint=make_checkpoint(variant="dae", appearance_dim=8), data_dir=mnist_dir)


def test_failed_export_leaves_the_existing_bundle_untouched(
    exported: Exported, bundle_copy: Copy, tmp_path: Path
) -> None:
    ckpt = exported("dae")[0]
    bundle = bundle_copy("dae")
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    with pytest.raises(ExportError, match="opset 15 is too old"):
        export_bundle(ckpt, bundle, opset=15, progress=None)
    with pytest.raises(ExportError, match=r"real-input parity needs the 'mnist' test images.*--data-dir"):
        export_bundle(ckpt, bundle, data_dir=tmp_path / "no-mnist-here", progress=None)
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before
    assert sorted(p.name for p in bundle.parent.iterdir()) == ["dae"]  # no staging folders left behind


def test_reexport_of_a_smaller_variant_removes_stale_graphs(
    exported: Exported, bundle_copy: Copy, mnist_dir: Path
) -> None:
    bundle = bundle_copy("dae")
    with one_thread():
        man = export_bundle(exported("autoencoder")[0], bundle, data_dir=mnist_dir, progress=None)
    assert sorted(p.name for p in bundle.iterdir()) == ["encoder.onnx", "manifest.json", "texture.onnx"]
    assert load_manifest(bundle) == man
    _verify(bundle)


def test_bad_checkpoint_and_bad_name_fail_clearly(tmp_path: Path, exported: Exported) -> None:
    with pytest.raises(ExportError, match="checkpoint not found"):
        export_bundle(tmp_path / "nope.pt", tmp_path / "b", progress=None)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ExportError, match="cannot load checkpoint"):
        export_bundle(junk, tmp_path / "b", progress=None)
    with pytest.raises(ExportError, match=r"--name 'has spaces/and slash' is not a valid bundle name"):
        export_bundle(exported("dae")[0], tmp_path / "b", name="has spaces/and slash", verify=False, progress=None)
    assert not (tmp_path / "b").exists()
    with pytest.raises(ExportError, match="exists and is not a folder"):
        export_bundle(exported("dae")[0], junk, progress=None)


def test_opset_18_export_verifies(exported: Exported, tmp_path: Path, mnist_dir: Path) -> None:
    with one_thread():
        man = export_bundle(exported("dae-affine")[0], tmp_path / "b18", opset=18, data_dir=mnist_dir, progress=None)
    assert man.opset == 18 and man.name == "b18"
    proto = onnx.load(str(tmp_path / "b18" / "warp.onnx"))
    assert [o.version for o in proto.opset_import if o.domain == ""] == [18]
    assert any(n.op_type == "GridSample" for n in proto.graph.node)
    assert any(n.op_type == "CumSum" for n in proto.graph.node)
    assert np.isfinite([man.provenance.metrics[k] for k in man.provenance.metrics]).all()
