"""The product API in-process (TestClient runs the real app and lifespan on real ONNX sessions of tiny bundles).

Every endpoint and format; exact interpolation endpoints; /swap = /decode(shape A, appearance B); batch
invariance; metadata, health, request ids and headers.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app
from service.config import Settings
from tests.service.service_helpers import digit_png, files, npz


@pytest.fixture(scope="module")
def api(tiny: Callable[[str], Any]) -> Iterator[Callable[..., TestClient]]:
    """variant → a TestClient whose lifespan has loaded that tiny bundle (one per variant and settings)."""
    clients: dict[tuple[str, tuple[tuple[str, Any], ...]], TestClient] = {}

    def get(variant: str, **settings: Any) -> TestClient:
        key = (variant, tuple(sorted(settings.items())))
        if key not in clients:
            s = Settings(bundle=tiny(variant).bundle, intra_op_threads=1, log_json=False, **settings)
            clients[key] = TestClient(create_app(s)).__enter__()
        return clients[key]

    yield get
    for c in clients.values():
        c.__exit__(None, None, None)


@pytest.fixture(scope="module")
def digits(mnist_digits: tuple[np.ndarray, np.ndarray]) -> list[bytes]:
    return [digit_png(mnist_digits, i) for i in range(8)]


def encode(c: TestClient, *blobs: bytes) -> list[dict[str, Any]]:
    r = c.post("/encode", files=files(*blobs))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


@pytest.mark.parametrize("variant", ["dae", "class-aware", "intrinsic", "autoencoder"])
def test_encode_gives_latents_classes_and_codes(
    api: Callable[..., TestClient], digits: list[bytes], variant: str
) -> None:
    c = api(variant)
    meta = c.get(f"/v2/models/tiny-{variant}").json()
    items = encode(c, digits[0], digits[1])
    assert [i["index"] for i in items] == [0, 1]
    for item in items:
        assert len(item["appearance"]) == meta["latents"]["appearance"]
        assert len(item["shape"]) == meta["latents"].get("shape", 0)
        assert isinstance(item["code"], str) and len(item["code"]) > 8
        assert ("class_probabilities" in item) == (variant == "class-aware")
        assert ("shading" in item) == (variant == "intrinsic")
    if variant == "class-aware":
        probs = np.array(items[0]["class_probabilities"])
        assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-5
        assert items[0]["predicted_label"] == str(int(np.argmax(probs)))
    raw = c.post("/encode", content=digits[0], headers={"Content-Type": "image/png"})
    assert raw.status_code == 200 and raw.json()["items"][0]["code"] == items[0]["code"]


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("dae", {"texture", "reconstruction", "grid", "displacement", "warped_grid", "flow"}),
        (
            "intrinsic",
            {"texture", "reconstruction", "albedo", "shading", "grid", "displacement", "warped_grid", "flow"},
        ),
        ("autoencoder", {"texture", "reconstruction"}),
    ],
)
def test_reconstruct_json_has_the_outputs_of_the_variant(
    api: Callable[..., TestClient], digits: list[bytes], variant: str, expected: set[str]
) -> None:
    r = api(variant).post("/reconstruct", files=files(digits[2]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["units"]["channels"][0].startswith("x") and body["units"]["pixel"] == pytest.approx(2 / 31)
    outs = body["items"][0]["outputs"]
    assert set(outs) == expected
    recon = Image.open(io.BytesIO(__import__("base64").b64decode(outs["reconstruction"]["png"])))
    assert recon.size == (32, 32) and recon.mode == "L"
    if "displacement" in outs:
        assert np.array(outs["displacement"]["values"]).shape == (2, 32, 32)


def test_reconstruct_npz_is_exact_and_consistent(api: Callable[..., TestClient], digits: list[bytes]) -> None:
    c = api("affine")
    r = c.post("/reconstruct?format=npz&outputs=all", files=files(digits[3], digits[4]))
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-npz"
    z = npz(r.content)
    assert z["grid"].shape == (2, 2, 32, 32) and z["grid"].dtype == np.float32
    assert z["affine"].shape == (2, 6) and z["shape"].shape == (2, 8)
    lin = np.linspace(-1, 1, 32, dtype=np.float32)
    gy, gx = np.meshgrid(lin, lin, indexing="ij")
    # displacement = grid - identity, channel 0 = x along the width, channel 1 = y along the height
    assert np.allclose(z["displacement"], z["grid"] - np.stack([gx, gy])[None], atol=1e-6)
    j = c.post("/reconstruct?arrays=values&outputs=reconstruction,displacement", files=files(digits[3])).json()
    vals = j["items"][0]["outputs"]["reconstruction"]
    assert "png" not in vals and np.array_equal(np.array(vals["values"], np.float32), z["reconstruction"][0])


def test_reconstruct_png_is_one_sheet(api: Callable[..., TestClient], digits: list[bytes]) -> None:
    r = api("dae", viz_scale=2).post(
        "/reconstruct?format=png&outputs=texture,reconstruction,flow", files=files(digits[0], digits[1])
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    im = Image.open(io.BytesIO(r.content))
    assert im.size == (3 * (64 + 2) + 2, 2 * (64 + 2) + 2)  # 3 columns of outputs, 2 rows of images


def test_batch_of_images_equals_each_alone(api: Callable[..., TestClient], digits: list[bytes]) -> None:
    c = api("class-aware")
    together = npz(c.post("/reconstruct?format=npz", files=files(*digits[:4])).content)
    for i in range(4):
        alone = npz(c.post("/reconstruct?format=npz", files=files(digits[i])).content)
        assert np.allclose(alone["reconstruction"][0], together["reconstruction"][i], atol=1e-5)


def test_decode_of_a_code_equals_the_reconstruction(api: Callable[..., TestClient], digits: list[bytes]) -> None:
    c = api("class-aware")
    rec = npz(c.post("/reconstruct?format=npz", files=files(digits[5])).content)
    code = encode(c, digits[5])[0]["code"]
    dec = npz(c.post("/decode?format=npz", json={"latents": [{"code": code}]}).content)
    assert np.array_equal(dec["shape"], rec["shape"]) and np.array_equal(dec["class_code"], rec["class_code"])
    assert np.allclose(dec["reconstruction"], rec["reconstruction"], atol=1e-5)
    item = encode(c, digits[5])[0]
    explicit = {"shape": item["shape"], "appearance": item["appearance"], "class": item["predicted_class"]}
    r = c.post("/decode?format=npz", json={"latents": [explicit, {"code": code, "class": "3"}]})
    assert r.status_code == 200, r.text
    both = npz(r.content)
    assert both["class_code"][0].argmax() == item["predicted_class"] and both["class_code"][1].argmax() == 3


@pytest.mark.parametrize("factor", ["both", "shape", "appearance"])
def test_interpolation_lands_exactly_on_the_encoded_latents(
    api: Callable[..., TestClient], digits: list[bytes], factor: str
) -> None:
    c = api("dae")
    a, b = encode(c, digits[0], digits[1])
    r = c.get(
        "/interpolate", params={"start": a["code"], "end": b["code"], "steps": 5, "factor": factor, "format": "npz"}
    )
    assert r.status_code == 200, r.text
    z = npz(r.content)
    assert z["reconstruction"].shape == (5, 1, 32, 32)
    start = {"shape": np.array(a["shape"], np.float32), "appearance": np.array(a["appearance"], np.float32)}
    end = {"shape": np.array(b["shape"], np.float32), "appearance": np.array(b["appearance"], np.float32)}
    for name in ("shape", "appearance"):
        assert np.array_equal(z[name][0], start[name])
        moves = factor == "both" or factor == name
        assert np.array_equal(z[name][-1], end[name] if moves else start[name])
        if not moves:
            assert np.all(z[name] == start[name])
    dec = npz(c.post("/decode?format=npz", json={"latents": [{"code": a["code"]}]}).content)
    assert np.allclose(z["reconstruction"][0], dec["reconstruction"][0], atol=1e-5)


def test_interpolation_json_png_gif_and_caching(api: Callable[..., TestClient], digits: list[bytes]) -> None:
    c = api("dae", viz_scale=1)
    a, b = encode(c, digits[0], digits[1])
    q = {"start": a["code"], "end": b["code"], "steps": 4}
    j = c.get("/interpolate", params=q)
    assert j.status_code == 200
    frames = j.json()["items"]
    assert [f["t"] for f in frames] == [0.0, pytest.approx(1 / 3), pytest.approx(2 / 3), 1.0]
    assert frames[0]["code"] == a["code"] and frames[-1]["code"] == b["code"]
    etag = j.headers["etag"]
    assert "max-age" in j.headers["cache-control"]
    assert c.get("/interpolate", params=q, headers={"If-None-Match": etag}).status_code == 304
    strip = c.get("/interpolate", params={**q, "format": "png", "outputs": "texture,reconstruction"})
    assert Image.open(io.BytesIO(strip.content)).size == (4 * 34 + 2, 2 * 34 + 2)  # a row per output
    gif = c.get("/interpolate", params={**q, "format": "gif"})
    assert gif.headers["content-type"] == "image/gif"
    assert getattr(Image.open(io.BytesIO(gif.content)), "n_frames", 1) == 4
    explicit = c.get(
        "/interpolate",
        params={
            "start_shape": ",".join(map(str, a["shape"])),
            "start_appearance": ",".join(map(str, a["appearance"])),
            "end": b["code"],
            "steps": 2,
            "format": "npz",
        },
    )
    assert explicit.status_code == 200, explicit.text


@pytest.mark.parametrize("variant", ["dae", "class-aware", "intrinsic"])
def test_swap_equals_decode_of_shape_a_and_appearance_b(
    api: Callable[..., TestClient], digits: list[bytes], variant: str
) -> None:
    c = api(variant)
    a, b = encode(c, digits[0], digits[1])
    klass = {"class": "7"} if variant == "class-aware" else {}
    sw = c.post(
        "/swap",
        params={"format": "npz", **klass},
        files=[("shape", ("a.png", digits[0], "image/png")), ("appearance", ("b.png", digits[1], "image/png"))],
    )
    assert sw.status_code == 200, sw.text
    lat: dict[str, Any] = {"shape": a["shape"], "appearance": b["appearance"], **klass}
    if variant == "intrinsic":
        lat["shading"] = b["shading"]
    dec = c.post("/decode?format=npz", json={"latents": [lat]})
    assert dec.status_code == 200, dec.text
    s, d = npz(sw.content), npz(dec.content)
    for name in ("texture", "grid", "reconstruction"):
        assert np.allclose(s[name], d[name], atol=1e-6), name


def test_metadata_health_and_headers(api: Callable[..., TestClient], digits: list[bytes]) -> None:
    c = api("class-aware")
    meta = c.get("/v2/models/tiny-class-aware")
    assert meta.status_code == 200
    m = meta.json()
    # The fused decoder graph runs in place of texture, deformation and warp: only the graphs that run are loaded.
    assert m["providers"]["encoder"][0] == "CPUExecutionProvider" and set(m["providers"]) == {"encoder", "decoder"}
    assert m["variant"] == "class-aware" and m["class_names"] == [str(i) for i in range(10)]
    assert m["inputs"][0]["name"] == "image" and m["inputs"][0]["shape"] == [-1, 1, 32, 32]  # OIP: -1 = batch
    other = c.get("/v2/models/other")  # under /v2 the protocol's error shape, the code in a header
    assert other.status_code == 404 and set(other.json()) == {"error"}
    assert other.headers["x-error-code"] == "model_not_found"
    assert c.get("/v2/models/tiny-class-aware/ready").json() == {"name": "tiny-class-aware", "ready": True}
    assert c.get("/v2/health/live").json() == {"status": "live", "live": True}
    assert c.get("/v2/health/ready").json() == {"status": "ready", "live": True, "ready": True}
    assert c.get("/readyz").status_code == c.get("/livez").status_code == 200
    r = c.post("/reconstruct", files=files(digits[0]), headers={"X-Request-ID": "my-id-1"})
    assert r.headers["x-request-id"] == "my-id-1"
    assert r.headers["x-execution-provider"] == "CPUExecutionProvider"
    timing = r.headers["server-timing"]
    for stage in ("queue-encode", "encoder", "queue-decode", "decoder"):  # decoder: the fused graph, one run
        assert f"{stage};dur=" in timing
    assert len(c.get("/v2/health/live", headers={"X-Request-ID": "bad id with spaces"}).headers["x-request-id"]) == 32
    docs = c.get("/openapi.json").json()
    for path in ("/encode", "/reconstruct", "/interpolate", "/decode", "/swap", "/v2/models/{name}"):
        assert path in docs["paths"]
    assert "multipart/form-data" in docs["paths"]["/encode"]["post"]["requestBody"]["content"]
    assert c.get("/docs").status_code == 200


def test_metrics_count_requests_batches_and_stages(api: Callable[..., TestClient], digits: list[bytes]) -> None:
    c = api("dae")
    c.post("/reconstruct", files=files(digits[0], digits[1], digits[2]))
    text = c.get("/metrics").text
    assert 'dae_request_duration_seconds_count{endpoint="/reconstruct",method="POST",status="200"}' in text
    for stage in ("encoder", "decoder"):
        assert f'dae_inference_seconds_count{{stage="{stage}"}}' in text
    assert 'dae_batch_size_bucket{le="4.0",queue="encode"}' in text
    assert 'dae_queue_depth{queue="encode"} 0.0' in text
    assert 'dae_model_info{name="tiny-dae"' in text and 'providers="CPUExecutionProvider"' in text
