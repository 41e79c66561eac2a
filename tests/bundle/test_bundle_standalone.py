"""The bundle contract needs numpy, Pillow and pydantic only: with torch, onnx, onnxruntime and the web stack
blocked it imports, loads the committed default bundle's manifest and converts an image."""

from __future__ import annotations

from tests.blocked import run_blocked

HEAVY = {
    "torch",
    "onnx",
    "onnxruntime",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "matplotlib",
    "service",
    "training",
    "export",
    "client",
    "harness",
}


def test_bundle_works_without_torch_onnx_or_the_service() -> None:
    code = """
import sys
from PIL import Image
from bundle.layout import Sizes, graph_layout
from bundle.manifest import load_manifest, verify_checksums
from bundle.preprocess import to_model_image, to_uint8_chw
m = load_manifest("models/mnist")
verify_checksums("models/mnist", m)
layout = graph_layout(Sizes("dae", 32, 1, appearance=4, shape=8))
assert {"encoder", "texture", "deformation", "warp"} <= set(layout)
arr = to_uint8_chw(to_model_image(Image.new("RGBA", (40, 30)), m.image_size, m.preprocessing.color_mode))
assert arr.shape == (m.channels, m.image_size, m.image_size)
loaded = sorted({k.split(".")[0] for k in sys.modules} & BLOCKED)
assert not loaded, loaded
print("bundle ok")
"""
    done = run_blocked(code, HEAVY)
    assert done.returncode == 0, done.stderr
    assert "bundle ok" in done.stdout
