"""The service decodes with the bundle's fused decoder graph (one session.run per decode batch) when it has one,
falls back to the three graphs when it has none (bundles exported before it), and returns the same outputs
either way; I/O binding (the CUDA path) gives the same outputs too, exercised here on the CPU provider."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from tests.service.service_helpers import files, npz


def _reconstruct(bundle: Path, digit: bytes, **settings: Any) -> tuple[dict[str, np.ndarray], str]:
    s = Settings(bundle=bundle, intra_op_threads=1, log_json=False, **settings)
    with TestClient(create_app(s)) as c:
        r = c.post("/reconstruct?format=npz&outputs=all", files=files(digit, digit))
        assert r.status_code == 200, r.text
        return npz(r.content), r.headers["server-timing"]


def test_fused_split_and_bound_decodes_agree(tiny: Callable[[str], Any], digit: bytes, tmp_path: Path) -> None:
    bundle = tiny("class-aware").bundle
    fused, timing = _reconstruct(bundle, digit)
    assert "decoder;dur=" in timing and "warp;dur=" not in timing  # one run, not three
    split, timing_split = _reconstruct(bundle, digit, fused_decoder=False)
    assert all(f"{stage};dur=" in timing_split for stage in ("texture", "deformation", "warp"))
    bound, _ = _reconstruct(bundle, digit, io_binding="on")
    assert set(fused) == set(split) == set(bound)
    for name in fused:
        np.testing.assert_allclose(fused[name], split[name], atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(fused[name], bound[name], err_msg=name)

    # a bundle exported before the fused graph existed: no "decoder" in its manifest
    old = tmp_path / "old"
    shutil.copytree(bundle, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["graphs"]["decoder"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    (old / "decoder.onnx").unlink()
    legacy, timing_old = _reconstruct(old, digit)
    assert "warp;dur=" in timing_old
    for name in fused:
        np.testing.assert_allclose(legacy[name], fused[name], atol=1e-5, err_msg=name)
