"""Bad input never gets a 500: each case is a 4xx with the one error shape and a stable code."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr

from bundle.manifest import BundleError
from service.app import create_app
from service.config import Settings
from service.runtime import Runtime, StartupError
from tests.service.service_helpers import assert_error, files, png

DIGIT = png(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8))


@pytest.fixture(scope="module")
def client(tiny: Callable[[str], Any]) -> Iterator[TestClient]:
    s = Settings(
        bundle=tiny("class-aware").bundle,
        intra_op_threads=1,
        log_json=False,
        max_body_bytes=200_000,
        max_pixels=1_000_000,
        max_images_per_request=4,
        max_steps=16,
    )
    with TestClient(create_app(s)) as c:
        yield c


@pytest.fixture(scope="module")
def code(client: TestClient) -> str:
    return str(client.post("/encode", files=files(DIGIT)).json()["items"][0]["code"])


def bomb() -> bytes:
    import io

    buf = io.BytesIO()
    Image.new("1", (2000, 2000)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"content": b"\x89PNG\r\n\x1a\n garbage", "headers": {"Content-Type": "image/png"}}, 400, "image_undecodable"),
        ({"content": DIGIT[: len(DIGIT) // 2], "headers": {"Content-Type": "image/png"}}, 400, "image_truncated"),
        ({"content": b"", "headers": {"Content-Type": "image/png"}}, 400, "body_empty"),
        ({"content": b"hello", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
        ({"content": DIGIT}, 415, "unsupported_media_type"),  # no content type at all
        ({"content": b"x" * 300_000, "headers": {"Content-Type": "image/png"}}, 413, "body_too_large"),
        ({"content": bomb(), "headers": {"Content-Type": "image/png"}}, 413, "image_too_large"),
        ({"files": files(*[DIGIT] * 5)}, 413, "too_many_images"),
        ({"data": {"a": "b"}, "files": {"note": ("n.txt", b"", "text/plain")}}, 400, "image_empty"),
        (
            {"content": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
            400,
            "no_images",
        ),
        ({"content": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data"}}, 400, "multipart_invalid"),
    ],
)
def test_bad_images_and_bodies(client: TestClient, kwargs: dict[str, Any], status: int, code: str) -> None:
    assert_error(client.post("/encode", **kwargs), status, code)


def test_multipart_without_files_and_swap_without_its_fields(client: TestClient) -> None:
    r = client.post(
        "/encode",
        content=b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--b--\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert_error(r, 400, "no_images")
    assert_error(client.post("/swap", files=files(DIGIT, DIGIT)), 400, "image_missing")
    assert_error(
        client.post("/swap", content=DIGIT, headers={"Content-Type": "image/png"}), 415, "unsupported_media_type"
    )


def test_chunked_body_over_the_limit_is_refused_while_streaming(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 10_000

    assert_error(client.post("/encode", content=chunks(), headers={"Content-Type": "image/png"}), 413, "body_too_large")


@pytest.mark.parametrize(
    ("latent", "status", "code"),
    [
        ({"code": "not a code!"}, 400, "code_malformed"),
        ({"shape": [0.5] * 3, "appearance": [0.5] * 4, "class": 1}, 422, "latent_wrong_length"),
        ({"shape": [0.5] * 8, "appearance": [0.5] * 4}, 422, "class_required"),
        ({"shape": [0.5] * 8, "appearance": [0.5] * 4, "class": 10}, 422, "class_unknown"),
        ({"shape": [0.5] * 8, "appearance": [0.5] * 4, "class": "seven"}, 422, "class_unknown"),
        ({"shape": [1e300] * 8, "appearance": [0.5] * 4, "class": 1}, 422, "latent_out_of_range"),
        ({"shape": [0.5] * 8, "shading": [1.0], "appearance": [0.5] * 4, "class": 1}, 422, "latent_unsupported"),
        ({"shape": "abc"}, 422, "validation_error"),
        ({"bogus": 1}, 422, "validation_error"),
    ],
)
def test_bad_latents(client: TestClient, latent: dict[str, Any], status: int, code: str) -> None:
    assert_error(client.post("/decode", json={"latents": [latent]}), status, code)


def test_non_finite_and_foreign_latents(client: TestClient, code: str, tiny: Callable[[str], Any]) -> None:
    body = '{"latents": [{"shape": [NaN, 0, 0, 0, 0, 0, 0, 0], "appearance": [0, 0, 0, 0], "class": 1}]}'
    r = client.post("/decode", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] in ("latent_not_finite", "validation_error")
    q = {"start_shape": ",".join(["nan"] * 8), "start_appearance": "0,0,0,0", "start_class": "1", "end": code}
    assert_error(client.get("/interpolate", params=q), 422, "latent_not_finite")
    with TestClient(create_app(Settings(bundle=tiny("dae").bundle, intra_op_threads=1, log_json=False))) as other:
        foreign = other.post("/encode", files=files(DIGIT)).json()["items"][0]["code"]
    assert_error(client.post("/decode", json={"latents": [{"code": foreign}]}), 422, "code_foreign_model")
    assert_error(client.post("/decode", json={"latents": [{"code": code, "shape": [1.0]}]}), 422, "latent_ambiguous")
    assert_error(client.post("/decode", json={"latents": [{"code": code}] * 5}), 413, "too_many_latents")
    assert_error(
        client.post("/decode", content=b"{not json", headers={"Content-Type": "application/json"}),
        422,
        "validation_error",
    )
    assert_error(client.post("/decode", json={"latents": []}), 422, "validation_error")


def test_bad_interpolation_parameters_each(client: TestClient, code: str) -> None:
    base = {"start": code, "end": code}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"steps": 1000}, "steps_out_of_range"),
        ({"steps": 1}, "steps_out_of_range"),
        ({"steps": "many"}, "validation_error"),
        ({"factor": "colour"}, "validation_error"),
        ({"format": "bmp"}, "validation_error"),
        ({"outputs": "albedo"}, "output_unavailable"),
        ({"end": None}, "latent_missing"),
        ({"start_class": "x", "start": None, "start_shape": "1", "start_appearance": "1"}, "latent_wrong_length"),
    ]
    for params, want in cases:
        q = {k: v for k, v in {**base, **params}.items() if v is not None}
        assert_error(client.get("/interpolate", params=q), 422, want)


def test_unknown_paths_methods_and_outputs(client: TestClient) -> None:
    assert_error(client.get("/nowhere"), 404, "not_found")
    assert_error(client.get("/encode"), 405, "method_not_allowed")
    assert_error(client.post("/reconstruct?outputs=albedo", files=files(DIGIT)), 422, "output_unavailable")
    assert_error(client.post("/reconstruct?format=gif", files=files(DIGIT)), 422, "validation_error")
    assert_error(client.post("/reconstruct?class=42", files=files(DIGIT)), 422, "class_unknown")


def test_not_ready_before_the_lifespan_has_loaded(tiny: Callable[[str], Any]) -> None:
    c = TestClient(create_app(Settings(bundle=tiny("dae").bundle, log_json=False)))  # lifespan not entered
    assert c.get("/v2/health/live").status_code == 200
    r = c.get("/v2/health/ready")
    assert r.status_code == 503 and r.json()["status"] == "not_ready"
    assert_error(c.post("/encode", files=files(DIGIT)), 503, "not_ready")


def test_bearer_token_guards_product_endpoints_only(tiny: Callable[[str], Any]) -> None:
    s = Settings(bundle=tiny("dae").bundle, auth_token=SecretStr("t0ken"), intra_op_threads=1, log_json=False)
    with TestClient(create_app(s)) as c:
        err = assert_error(c.post("/encode", files=files(DIGIT)), 401, "auth_required")
        assert "Bearer" in err["message"]
        assert_error(
            c.post("/encode", files=files(DIGIT), headers={"Authorization": "Bearer nope"}), 401, "auth_invalid"
        )
        assert c.post("/encode", files=files(DIGIT), headers={"Authorization": "Bearer t0ken"}).status_code == 200
        assert c.get("/interpolate").status_code == 401
        for path in ("/v2/health/live", "/v2/health/ready", "/metrics", "/v2/models/tiny-dae"):
            assert c.get(path).status_code == 200, path


def test_bundle_problems_refuse_to_start_naming_them(tiny: Callable[[str], Any], tmp_path: Any) -> None:
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(tiny("dae").bundle, bundle)
    with pytest.raises(BundleError, match="does not exist"):
        Runtime.load(Settings(bundle=tmp_path / "missing"))
    with pytest.raises(StartupError, match="DAE_REQUIRE_CUDA"):
        Runtime.load(Settings(bundle=bundle, require_cuda=True, providers="CPUExecutionProvider"))
    with pytest.raises(StartupError, match="none of the requested providers"):
        Runtime.load(Settings(bundle=bundle, providers="NoSuchExecutionProvider"))
    (bundle / "warp.onnx").write_bytes((bundle / "warp.onnx").read_bytes() + b"\0")
    with pytest.raises(BundleError, match=r"checksum mismatch for warp\.onnx"):
        Runtime.load(Settings(bundle=bundle))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["variant"] = "nonsense"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="invalid manifest"):
        Runtime.load(Settings(bundle=bundle))
