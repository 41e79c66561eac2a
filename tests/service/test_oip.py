"""The Open Inference Protocol (KServe v2 REST + Triton's binary tensors) against a real uvicorn, spoken by the
real clients: Triton's ``tritonclient.http`` and KServe's ``InferenceRESTClient`` (protocol v2).

    .venv/bin/python -m pytest tests/service/test_oip.py -q

"Equal to the REST API": the same digits go to ``/reconstruct?format=npz`` as 32x32 PNGs and to OIP as the
preprocessed tensor (the PNG's pixels / 255, which is all the service's decoder does to a 32x32 grey image).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from tests.service.service_helpers import files, npz, png

tritonhttp = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

DECODED = ("texture", "increments", "grid", "displacement", "reconstruction")


@pytest.fixture(scope="module")
def digits32(mnist_digits: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Six real MNIST test digits padded to 32x32 (uint8): the bundle's size, so decoding is only / 255."""
    return np.pad(mnist_digits[0][:6], ((0, 0), (2, 2), (2, 2)))


def as_input(d: np.ndarray) -> np.ndarray:
    return (d.astype(np.float32) / np.float32(255.0))[:, None]


@pytest.fixture(scope="module")
def server(serve: Callable[..., Any], tiny: Callable[[str], Any]) -> Any:
    return serve(tiny("class-aware").bundle, max_images_per_request=8)


@pytest.fixture(scope="module")
def rest(server: Any, digits32: np.ndarray) -> dict[str, np.ndarray]:
    """What the REST API gives for the digits (exact float32 arrays)."""
    r = httpx.post(
        f"{server.url}/reconstruct?format=npz&outputs=all", files=files(*[png(d) for d in digits32]), timeout=60
    )
    assert r.status_code == 200, r.text
    enc = httpx.post(f"{server.url}/encode", files=files(*[png(d) for d in digits32]), timeout=60).json()["items"]
    out = npz(r.content)
    out["class_probabilities"] = np.array([i["class_probabilities"] for i in enc], np.float32)
    out["appearance"] = np.array([i["appearance"] for i in enc], np.float32)
    out["code"] = np.array([i["code"] for i in enc])
    return out


@pytest.fixture()
def triton(server: Any) -> Any:
    client = tritonhttp.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=60)
    yield client
    client.close()


def test_triton_health_and_metadata(triton: Any) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("tiny-class-aware") and triton.is_model_ready("tiny-class-aware-decoder")
    assert triton.is_model_ready("tiny-class-aware", "1") and not triton.is_model_ready("other")
    server_meta = triton.get_server_metadata()
    assert "binary_tensor_data" in server_meta["extensions"]
    assert server_meta["models"] == ["tiny-class-aware", "tiny-class-aware-decoder"]
    meta = triton.get_model_metadata("tiny-class-aware")
    assert meta["platform"] == "onnxruntime_onnx" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 32, 32]}]
    outs = {o["name"]: o for o in meta["outputs"]}
    assert outs["class_probabilities"]["shape"] == [-1, 10] and outs["code"]["datatype"] == "BYTES"
    assert outs["reconstruction"]["shape"] == [-1, 1, 32, 32] and outs["grid"]["shape"] == [-1, 2, 32, 32]
    assert all(isinstance(d, int) for o in meta["outputs"] for d in o["shape"])
    dec = triton.get_model_metadata("tiny-class-aware-decoder", "1")
    assert [i["name"] for i in dec["inputs"]] == ["shape", "appearance", "class_code"]
    assert dec["inputs"][2]["shape"] == [-1, 10]
    with pytest.raises(InferenceServerException, match="no model named 'nope'"):
        triton.get_model_metadata("nope")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_triton_infer_equals_rest(triton: Any, digits32: np.ndarray, rest: dict[str, np.ndarray], binary: bool) -> None:
    x = as_input(digits32)
    inp = tritonhttp.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    names = ["reconstruction", "texture", "grid", "displacement", "class_probabilities", "appearance", "code"]
    outputs = [tritonhttp.InferRequestedOutput(n, binary_data=binary) for n in names]
    result = triton.infer("tiny-class-aware", [inp], outputs=outputs, request_id=f"req-{binary}")
    response = result.get_response()
    assert response["id"] == f"req-{binary}" and response["model_name"] == "tiny-class-aware"
    assert [o["name"] for o in response["outputs"]] == names  # exactly the outputs asked for, in order
    for name in names[:-1]:
        got = result.as_numpy(name)
        assert got.dtype == np.float32 and got.shape == rest[name].shape, name
        np.testing.assert_allclose(got, rest[name], atol=2e-5, err_msg=name)
    assert [c.decode() if isinstance(c, bytes) else c for c in result.as_numpy("code")] == list(rest["code"])


def test_triton_all_outputs_binary_by_default_and_decoder_roundtrip(
    triton: Any, digits32: np.ndarray, rest: dict[str, np.ndarray]
) -> None:
    x = as_input(digits32[:4])
    inp = tritonhttp.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = triton.infer("tiny-class-aware", [inp])  # no outputs named: all of them, binary
    got = {o["name"] for o in result.get_response()["outputs"]}
    assert {"shape", "appearance", "class_logits", "class_probabilities", "code", *DECODED} <= got
    # interpolation over OIP: latents out of the model, mixed here, decoded by the decoder model
    shape, appearance, probs = (result.as_numpy(n) for n in ("shape", "appearance", "class_probabilities"))
    lat = {"shape": shape, "appearance": appearance, "class_code": probs}
    ins = []
    for name, value in lat.items():
        i = tritonhttp.InferInput(name, list(value.shape), "FP32")
        i.set_data_from_numpy(value)
        ins.append(i)
    dec = triton.infer("tiny-class-aware-decoder", ins, model_version="1")
    np.testing.assert_allclose(dec.as_numpy("reconstruction"), rest["reconstruction"][:4], atol=2e-5)
    t = np.linspace(0, 1, 5, dtype=np.float32)[:, None]
    mid = {k: (1 - t) * v[0:1] + t * v[1:2] for k, v in lat.items()}  # 5 frames from digit 0 to digit 1
    ins = []
    for name, value in mid.items():
        i = tritonhttp.InferInput(name, list(value.shape), "FP32")
        i.set_data_from_numpy(value, binary_data=False)
        ins.append(i)
    frames = triton.infer(
        "tiny-class-aware-decoder", ins, outputs=[tritonhttp.InferRequestedOutput("reconstruction")]
    ).as_numpy("reconstruction")
    assert frames.shape == (5, 1, 32, 32)
    np.testing.assert_allclose(frames[0], rest["reconstruction"][0], atol=2e-5)
    np.testing.assert_allclose(frames[-1], rest["reconstruction"][1], atol=2e-5)


def test_triton_bad_input_raises_our_message(triton: Any) -> None:
    x = np.zeros((2, 1, 28, 28), np.float32)
    inp = tritonhttp.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException) as e:
        triton.infer("tiny-class-aware", [inp])
    assert e.value.status() == "400"
    assert "input 'image': shape [2, 1, 28, 28], the model expects [-1, 1, 32, 32]" in e.value.message()
    bad = tritonhttp.InferInput("image", [1, 1, 32, 32], "FP32")
    bad.set_data_from_numpy(np.full((1, 1, 32, 32), 2.0, np.float32))
    with pytest.raises(InferenceServerException, match=r"values must be in \[0, 1\]"):
        triton.infer("tiny-class-aware", [bad])
    ok = tritonhttp.InferInput("image", [1, 1, 32, 32], "FP32")
    ok.set_data_from_numpy(np.zeros((1, 1, 32, 32), np.float32))
    with pytest.raises(InferenceServerException, match="has no output 'flow'"):
        triton.infer("tiny-class-aware", [ok], outputs=[tritonhttp.InferRequestedOutput("flow")])
    with pytest.raises(InferenceServerException, match="has no version '7'"):
        triton.infer("tiny-class-aware", [ok], model_version="7")
    many = tritonhttp.InferInput("image", [9, 1, 32, 32], "FP32")
    many.set_data_from_numpy(np.zeros((9, 1, 32, 32), np.float32))
    with pytest.raises(InferenceServerException, match="exceeds the limit of 8") as e:
        triton.infer("tiny-class-aware", [many])
    assert e.value.status() == "413"


def test_kserve_rest_client_v2(server: Any, digits32: np.ndarray, rest: dict[str, np.ndarray]) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    x = as_input(digits32[:3])

    async def talk() -> tuple[Any, ...]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
        try:
            live = await client.is_server_live(server.url)
            ready = await client.is_server_ready(server.url)
            model_ready = await client.is_model_ready(server.url, "tiny-class-aware")
            results = []
            for binary in (False, True):
                inp = InferInput("image", list(x.shape), "FP32")
                inp.set_data_from_numpy(x, binary_data=binary)
                req = InferRequest(
                    "tiny-class-aware",
                    [inp],
                    request_id=f"k{binary}",
                    request_outputs=[
                        RequestedOutput("reconstruction", {"binary_data": binary}),
                        RequestedOutput("class_probabilities"),
                    ],
                )
                results.append(await client.infer(server.url, req, model_name="tiny-class-aware"))
            bad = InferRequest("tiny-class-aware", [InferInput("images", [1], "FP32", data=[0.0])])
            with pytest.raises(httpx.HTTPStatusError) as e:
                await client.infer(server.url, bad, model_name="tiny-class-aware")
            return live, ready, model_ready, results, str(e.value)
        finally:
            await client.close()

    live, ready, model_ready, results, error = asyncio.run(talk())
    assert live is True and ready is True and model_ready is True
    for res in results:
        assert res.model_name == "tiny-class-aware"
        out = {o.name: o.as_numpy() for o in res.outputs}
        np.testing.assert_allclose(out["reconstruction"], rest["reconstruction"][:3], atol=2e-5)
        np.testing.assert_allclose(out["class_probabilities"], rest["class_probabilities"][:3], atol=2e-5)
    assert results[0].id == "kFalse" and results[1].id == "kTrue"
    assert "has no input 'images'" in error and "400" in error


def post(
    server: Any,
    body: bytes | str,
    headers: dict[str, str] | None = None,
    path: str = "/v2/models/tiny-class-aware/infer",
) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", content=body, headers=headers or {}, timeout=60)


def oip_error(r: httpx.Response, status: int, code: str) -> str:
    """The protocol's error: ``{"error": "<message>"}``, the stable code in X-Error-Code."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    assert r.headers["x-error-code"] == code and r.headers["x-request-id"]
    return str(body["error"])


def test_raw_protocol_details(server: Any, digits32: np.ndarray, rest: dict[str, np.ndarray]) -> None:
    x = as_input(digits32[:2])
    doc = {
        "id": "raw",
        "inputs": [
            {"name": "image", "datatype": "FP32", "shape": [2, 1, 32, 32], "data": x.tolist()}
        ],  # nested lists are allowed too
        "outputs": [{"name": "reconstruction"}, {"name": "code", "parameters": {"binary_data": True}}],
    }
    r = post(server, json.dumps(doc), {"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    assert r.headers["content-type"] == "application/octet-stream"
    head = json.loads(r.content[:n])
    assert head["id"] == "raw" and head["model_version"] == "1"
    rec, code = head["outputs"]
    np.testing.assert_allclose(
        np.array(rec["data"], np.float32).reshape(rec["shape"]), rest["reconstruction"][:2], atol=2e-5
    )
    blob = r.content[n:]
    assert len(blob) == code["parameters"]["binary_data_size"]
    (first,) = struct.unpack_from("<I", blob)
    assert blob[4 : 4 + first].decode() == rest["code"][0]
    # binary input, no content type at all (what Triton's client sends), gzip-compressed
    head_json = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "datatype": "FP32",
                    "shape": [2, 1, 32, 32],
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "displacement"}],
        }
    ).encode()
    body = gzip.compress(head_json + x.tobytes())
    r = post(server, body, {"Inference-Header-Content-Length": str(len(head_json)), "Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json" and "id" not in r.json()
    np.testing.assert_allclose(
        np.array(r.json()["outputs"][0]["data"]).reshape(2, 2, 32, 32), rest["displacement"][:2], atol=2e-5
    )
    assert "queue-encode;dur=" in r.headers["server-timing"]
    # errors: the protocol's shape under /v2, ours elsewhere
    assert "binary_data_size" in oip_error(
        post(server, head_json + x.tobytes()[:-4], {"Inference-Header-Content-Length": str(len(head_json))}),
        400,
        "binary_size_mismatch",
    )
    oip_error(
        post(server, head_json + x.tobytes(), {"Inference-Header-Content-Length": "x"}), 400, "inference_header_invalid"
    )
    oip_error(post(server, b"{", {"Content-Type": "application/json"}), 400, "request_invalid")
    oip_error(post(server, b"abc", {"Content-Type": "multipart/form-data"}), 415, "unsupported_media_type")
    oip_error(post(server, json.dumps(doc), path="/v2/models/nope/infer"), 404, "model_not_found")
    oip_error(httpx.get(f"{server.url}/v2/models/nope"), 404, "model_not_found")
    oip_error(httpx.get(f"{server.url}/v2/nothing/here"), 404, "not_found")
    nan = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 1, 1], "data": [0.5]}]}
    assert "[-1, 1, 32, 32]" in oip_error(post(server, json.dumps(nan)), 400, "input_shape")
    fp64 = {"inputs": [{"name": "image", "datatype": "FP64", "shape": [1, 1, 32, 32], "data": [0.5] * 1024}]}
    oip_error(post(server, json.dumps(fp64)), 400, "input_datatype")
    late = {**fp64, "inputs": [{**fp64["inputs"][0], "datatype": "FP32"}], "parameters": {"timeout": 1}}
    oip_error(post(server, json.dumps(late)), 504, "deadline_exceeded")  # Triton's timeout (µs) shortens ours
    assert (
        httpx.post(f"{server.url}/encode", content=b"x", headers={"Content-Type": "text/plain"}).json()["error"]["code"]
        == "unsupported_media_type"
    )  # the REST API keeps its own error shape


def test_same_queues_metrics_limits_and_auth(serve: Callable[..., Any], tiny: Callable[[str], Any]) -> None:
    server = serve(tiny("intrinsic").bundle, auth_token="s3cret", max_body_bytes=64 * 1024)
    auth = {"Authorization": "Bearer s3cret"}
    x = np.full((1, 1, 32, 32), 0.5, np.float32)
    doc = json.dumps(
        {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 32, 32], "data": x.ravel().tolist()}]}
    )
    oip_error(post(server, doc, path="/v2/models/tiny-intrinsic/infer"), 401, "auth_required")
    r = post(server, doc, auth, path="/v2/models/tiny-intrinsic/versions/1/infer")
    assert r.status_code == 200, r.text
    outs = {o["name"]: o for o in r.json()["outputs"]}
    assert {"shading_latent", "albedo", "shading", "texture", "reconstruction"} <= set(outs)
    assert "class_probabilities" not in outs
    big = b"{" + b" " * (64 * 1024) + b"}"
    oip_error(post(server, big, auth, path="/v2/models/tiny-intrinsic/infer"), 413, "body_too_large")
    # the same queues and metrics as the REST API
    text = httpx.get(f"{server.url}/metrics").text
    assert re.search(
        r'dae_request_duration_seconds_count\{endpoint="/v2/models/\{name\}/versions/\{version\}/infer",'
        r'method="POST",status="200"\} 1\.0',
        text,
    ), text
    assert 'dae_request_duration_seconds_count{endpoint="/v2/models/{name}/infer",method="POST",status="413"}' in text
    assert 'dae_batch_images_total{queue="encode"} ' in text and 'dae_batch_images_total{queue="decode"} ' in text
    assert 'dae_rejections_total{reason="auth"} 1.0' in text
    # health bodies carry the protocol's booleans
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"status": "live", "live": True}
    assert httpx.get(f"{server.url}/v2/health/ready").json() == {"status": "ready", "live": True, "ready": True}


def test_docs_work_offline(server: Any) -> None:
    page = httpx.get(f"{server.url}/docs").text
    urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", page)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "cdn" not in page.lower() and "https://" not in page.replace("https://swagger.io", "")
    for u in urls:
        if u != "/openapi.json":
            r = httpx.get(f"{server.url}{u}")
            assert r.status_code == 200 and len(r.content) > 0, u
    js = httpx.get(f"{server.url}/docs-assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 500_000 and "javascript" in js.headers["content-type"]
    redoc = httpx.get(f"{server.url}/redoc").text
    assert "/docs-assets/redoc.standalone.js" in redoc and "cdn" not in redoc.lower()
    assert "fonts.googleapis" not in redoc


def test_client_gone_before_its_body_is_quiet(server: Any) -> None:
    """A client that hangs up mid-body: a 499 in the metrics and an info line, never a traceback."""
    host, port = server.url.removeprefix("http://").split(":")
    head = (
        "POST /v2/models/tiny-class-aware/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head.encode() + b'{"inputs": [')
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(f"{server.url}/metrics").text
        if 'dae_client_disconnects_total{endpoint="/v2/models/{name}/infer"} 1.0' in text:
            break
        time.sleep(0.1)
    assert 'dae_client_disconnects_total{endpoint="/v2/models/{name}/infer"} 1.0' in text
    assert "Traceback" not in server.logs() and "unhandled error" not in server.logs()
