"""The Open Inference Protocol codec (service/oip.py) on its own: request parsing in JSON and binary, the checks
against a model's tensors, and response building. The real clients against a real server: test_oip.py.

    .venv/bin/python -m pytest tests/service/test_oip_codec.py -q
"""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from typing import Any

import numpy as np
import pytest

from bundle.manifest import Manifest
from service import oip
from service.errors import BadRequestError, NotFoundError, PayloadTooLargeError, ServiceError


def manifest(**over: Any) -> Manifest:
    """A class-aware 32x32 manifest (its graphs' files are never opened here)."""
    spec = {"file": "x.onnx", "sha256": "0" * 64}
    b = "batch"
    doc: dict[str, Any] = {
        "name": "m",
        "variant": "class-aware",
        "image_size": 32,
        "channels": 1,
        "latents": [{"name": "shape", "size": 8}, {"name": "appearance", "size": 4}],
        "class_names": [str(i) for i in range(10)],
        "opset": 17,
        "warp": {"increment_scale": 5.0, "offset": 1.2, "clamp": 1.0},
        "preprocessing": {"color_mode": "L"},
        "provenance": {"data": "test"},
        "graphs": {
            "encoder": {
                **spec,
                "inputs": [{"name": "image", "shape": [b, 1, 32, 32]}],
                "outputs": [
                    {"name": "shape", "shape": [b, 8]},
                    {"name": "appearance", "shape": [b, 4]},
                    {"name": "class_logits", "shape": [b, 10]},
                ],
            },
            "texture": {
                **spec,
                "inputs": [{"name": "appearance", "shape": [b, 4]}, {"name": "class_code", "shape": [b, 10]}],
                "outputs": [{"name": "texture", "shape": [b, 1, 32, 32]}],
            },
            "deformation": {
                **spec,
                "inputs": [{"name": "shape", "shape": [b, 8]}, {"name": "class_code", "shape": [b, 10]}],
                "outputs": [{"name": "increments", "shape": [b, 2, 32, 32]}],
            },
            "warp": {
                **spec,
                "inputs": [
                    {"name": "increments", "shape": [b, 2, 32, 32]},
                    {"name": "texture", "shape": [b, 1, 32, 32]},
                ],
                "outputs": [
                    {"name": "grid", "shape": [b, 2, 32, 32]},
                    {"name": "displacement", "shape": [b, 2, 32, 32]},
                    {"name": "reconstruction", "shape": [b, 1, 32, 32]},
                ],
            },
        },
    }
    doc.update(over)
    return Manifest.model_validate(doc)


MODELS = oip.models_for(manifest(), "m")


def image_request(x: np.ndarray, binary: bool = False, **extra: Any) -> tuple[bytes, int | None]:
    t: dict[str, Any] = {"name": "image", "datatype": "FP32", "shape": list(x.shape)}
    if binary:
        head = json.dumps({"inputs": [{**t, "parameters": {"binary_data_size": x.nbytes}}], **extra}).encode()
        return head + x.astype("<f4").tobytes(), len(head)
    return json.dumps({"inputs": [{**t, "data": x.ravel().tolist()}], **extra}).encode(), None


def fails(cls: type[ServiceError], code: str, fn: Any, *args: Any) -> str:
    with pytest.raises(cls) as e:
        fn(*args)
    assert e.value.code == code, (e.value.code, e.value.message)
    return e.value.message


def test_models_and_metadata() -> None:
    m, d = MODELS["m"], MODELS["m-decoder"]
    assert m.metadata()["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 32, 32]}]
    assert [t.name for t in m.outputs] == [
        "shape",
        "appearance",
        "class_logits",
        "class_probabilities",
        "code",
        "texture",
        "increments",
        "grid",
        "displacement",
        "reconstruction",
    ]
    assert m.encoder_outputs == {"shape", "appearance", "class_logits", "class_probabilities", "code"}
    assert [(t.name, t.shape) for t in d.inputs] == [
        ("shape", (-1, 8)),
        ("appearance", (-1, 4)),
        ("class_code", (-1, 10)),
    ]
    assert d.metadata()["platform"] == "onnxruntime_onnx" and d.metadata()["versions"] == ["1"]
    assert oip.resolve(MODELS, "m", "1") is m
    fails(NotFoundError, "model_not_found", oip.resolve, MODELS, "x", None)
    fails(NotFoundError, "model_version_not_found", oip.resolve, MODELS, "m", "2")


@pytest.mark.parametrize("binary", [False, True])
def test_image_round_trip(binary: bool) -> None:
    x = np.random.default_rng(0).random((3, 1, 32, 32), dtype=np.float32)
    body, n = image_request(x, binary, id="a", outputs=[{"name": "grid", "parameters": {"binary_data": True}}])
    req = oip.parse_request(body, n)
    assert req.id == "a"
    arrays = oip.check_inputs(MODELS["m"], req, max_batch=8)
    assert np.array_equal(arrays["image"], x)
    wanted = oip.requested(MODELS["m"], req)
    assert [(t.name, b) for t, b in wanted] == [("grid", True)]


def test_nested_json_and_defaults() -> None:
    x = np.full((1, 1, 32, 32), 0.25, np.float32)
    doc = {
        "inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 32, 32], "data": x.tolist()}],
        "parameters": {"binary_data_output": True, "timeout": 2500},
    }
    req = oip.parse_request(json.dumps(doc).encode(), None)
    assert req.timeout_s == pytest.approx(0.0025) and req.binary_output
    assert np.array_equal(oip.check_inputs(MODELS["m"], req, 8)["image"], x)
    assert all(binary for _, binary in oip.requested(MODELS["m"], req))  # every output, binary
    assert len(oip.requested(MODELS["m"], req)) == len(MODELS["m"].outputs)


def test_response_json_and_binary() -> None:
    m = MODELS["m"]
    rec = np.arange(2 * 32 * 32, dtype=np.float32).reshape(2, 1, 32, 32)
    code = m.output("code")
    rec_t = m.output("reconstruction")
    assert code and rec_t
    body, headers = oip.encode_response(m, "id1", [(rec_t, rec, False), (code, ["ab", "ç"], False)])
    doc = json.loads(body)
    assert headers == {"Content-Type": "application/json"} and doc["id"] == "id1" and doc["model_name"] == "m"
    assert doc["outputs"][0]["shape"] == [2, 1, 32, 32] and doc["outputs"][0]["data"][:3] == [0.0, 1.0, 2.0]
    assert doc["outputs"][1] == {"name": "code", "datatype": "BYTES", "shape": [2], "data": ["ab", "ç"]}
    noise = np.random.default_rng(1).standard_normal((2, 1, 32, 32)).astype(np.float32)
    body, _ = oip.encode_response(m, None, [(rec_t, noise, False)])  # JSON numbers round-trip float32 exactly
    assert np.array_equal(np.array(json.loads(body)["outputs"][0]["data"], np.float32).reshape(noise.shape), noise)
    body, headers = oip.encode_response(m, None, [(rec_t, rec, True), (code, ["ab", "ç"], True)])
    n = int(headers[oip.HEADER])
    assert headers["Content-Type"] == "application/octet-stream"
    head = json.loads(body[:n])
    assert "id" not in head
    size0 = head["outputs"][0]["parameters"]["binary_data_size"]
    assert np.array_equal(np.frombuffer(body[n : n + size0], "<f4").reshape(2, 1, 32, 32), rec)
    blob = body[n + size0 :]
    assert blob == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 2) + "ç".encode()


def test_decoder_inputs() -> None:
    d = MODELS["m-decoder"]
    lat = {
        "shape": np.zeros((2, 8), np.float32),
        "appearance": np.ones((2, 4), np.float32),
        "class_code": np.eye(10, dtype=np.float32)[:2],
    }
    doc = {
        "inputs": [
            {"name": k, "datatype": "FP32", "shape": list(v.shape), "data": v.ravel().tolist()} for k, v in lat.items()
        ]
    }
    out = oip.check_inputs(d, oip.parse_request(json.dumps(doc).encode(), None), 8)
    assert all(np.array_equal(out[k], v) for k, v in lat.items())
    doc["inputs"][0]["data"] = [2e6] + [0.0] * 15
    fails(
        BadRequestError, "input_out_of_range", oip.check_inputs, d, oip.parse_request(json.dumps(doc).encode(), None), 8
    )
    doc["inputs"][0]["shape"] = [1, 8]
    doc["inputs"][0]["data"] = [0.0] * 8
    msg = fails(
        BadRequestError, "input_shape", oip.check_inputs, d, oip.parse_request(json.dumps(doc).encode(), None), 8
    )
    assert "batch 2, other inputs have 1" in msg or "batch 1, other inputs have 2" in msg


def tensor(**over: Any) -> dict[str, Any]:
    return {"name": "image", "datatype": "FP32", "shape": [1, 1, 32, 32], "data": [0.5] * 1024, **over}


@pytest.mark.parametrize(
    ("doc", "code", "needle"),
    [
        ({"inputs": []}, "request_invalid", "non-empty list"),
        ([1, 2], "request_invalid", "JSON object"),
        ({"inputs": [tensor(datatype="FP8")]}, "input_datatype", "unknown datatype"),
        ({"inputs": [tensor(shape=[1, -1, 32, 32])]}, "input_shape", "non-negative"),
        ({"inputs": [tensor(data=[0.5] * 1000)]}, "input_data_invalid", "1000 values"),
        ({"inputs": [tensor(data=["x"] * 1024)]}, "input_data_invalid", "FP32 numbers"),
        ({"inputs": [tensor(data=[True] * 1024)]}, "input_data_invalid", "FP32 numbers"),
        ({"inputs": [tensor(data=[None] * 1024)]}, "input_data_invalid", "FP32 numbers"),
        ({"inputs": [tensor(data=[[0.5] * 1000, [0.5] * 24])]}, "input_data_invalid", "rectangular"),
        ({"inputs": [tensor(), tensor()]}, "input_duplicate", "given twice"),
        ({"inputs": [{"name": "image", "datatype": "FP32", "shape": [1]}]}, "input_data_invalid", "neither"),
        ({"inputs": [tensor()], "id": 5}, "request_invalid", "id must be a string"),
        ({"inputs": [tensor()], "parameters": {"sequence_id": 3}}, "parameter_unsupported", "stateless"),
        ({"inputs": [tensor()], "parameters": {"timeout": -1}}, "request_invalid", "timeout"),
        ({"inputs": [tensor(parameters={"shared_memory_region": "r"})]}, "parameter_unsupported", "shared memory"),
        (
            {"inputs": [tensor()], "outputs": [{"name": "grid", "parameters": {"classification": 3}}]},
            "parameter_unsupported",
            "classification",
        ),
        (
            {"inputs": [tensor(parameters={"binary_data_size": 4096})]},
            "inference_header_invalid",
            "no Inference-Header",
        ),
    ],
)
def test_malformed_requests(doc: Any, code: str, needle: str) -> None:
    assert needle in fails(BadRequestError, code, oip.parse_request, json.dumps(doc).encode(), None)


def test_binary_framing_errors() -> None:
    x = np.zeros((1, 1, 32, 32), np.float32)
    body, n = image_request(x, binary=True)
    assert n is not None
    fails(BadRequestError, "binary_size_mismatch", oip.parse_request, body[:-1], n)  # short
    fails(BadRequestError, "binary_size_mismatch", oip.parse_request, body + b"\0", n)  # extra bytes
    fails(BadRequestError, "request_invalid", oip.parse_request, body, n - 1)  # header cut inside the JSON
    fails(BadRequestError, "inference_header_invalid", oip.header_length, "12x", 100)
    fails(BadRequestError, "inference_header_invalid", oip.header_length, "101", 100)
    assert oip.header_length(None, 5) is None and oip.header_length(" 7 ", 9) == 7
    # BYTES in binary: 4-byte little-endian length, then the bytes
    head = json.dumps(
        {
            "inputs": [
                {"name": "s", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 4 + 2 + 4 + 1}}
            ]
        }
    ).encode()
    req = oip.parse_request(head + struct.pack("<I", 2) + b"hi" + struct.pack("<I", 1) + b"!", len(head))
    assert list(req.inputs["s"][2]) == ["hi", "!"]
    # an FP16 binary input parses (and is then refused by the model: it wants FP32)
    h16 = json.dumps(
        {
            "inputs": [
                {"name": "image", "datatype": "FP16", "shape": [1, 1, 32, 32], "parameters": {"binary_data_size": 2048}}
            ]
        }
    ).encode()
    req = oip.parse_request(h16 + np.zeros(1024, "<f2").tobytes(), len(h16))
    msg = fails(BadRequestError, "input_datatype", oip.check_inputs, MODELS["m"], req, 8)
    assert "FP16, the model expects FP32" in msg


def test_model_checks() -> None:
    m = MODELS["m"]
    parse = oip.parse_request
    fails(
        BadRequestError,
        "input_unknown",
        oip.check_inputs,
        m,
        parse(json.dumps({"inputs": [tensor(name="img")]}).encode(), None),
        8,
    )
    big = np.zeros((9, 1, 32, 32), np.float32)
    fails(PayloadTooLargeError, "too_many_images", oip.check_inputs, m, parse(*image_request(big)), 8)
    empty = {"inputs": [tensor(shape=[0, 1, 32, 32], data=[])]}
    fails(BadRequestError, "input_shape", oip.check_inputs, m, parse(json.dumps(empty).encode(), None), 8)
    nan = np.full((1, 1, 32, 32), np.nan, np.float32)
    fails(BadRequestError, "input_not_finite", oip.check_inputs, m, parse(*image_request(nan, binary=True)), 8)
    over = np.full((1, 1, 32, 32), 1.5, np.float32)
    fails(BadRequestError, "input_out_of_range", oip.check_inputs, m, parse(*image_request(over)), 8)
    req = parse(*image_request(np.zeros((1, 1, 32, 32), np.float32), outputs=[{"name": "grid"}, {"name": "grid"}]))
    fails(BadRequestError, "output_duplicate", oip.requested, m, req)
    req = parse(*image_request(np.zeros((1, 1, 32, 32), np.float32), outputs=[{"name": "flow"}]))
    assert "has no output 'flow'" in fails(BadRequestError, "output_unknown", oip.requested, m, req)


def test_content_type_and_encoding() -> None:
    for ok in ("", "application/json", "application/json; charset=utf-8", "Application/Octet-Stream"):
        oip.check_content_type(ok)
    fails(ServiceError, "unsupported_media_type", oip.check_content_type, "multipart/form-data; boundary=x")
    data = b'{"inputs": []}' * 10
    assert oip.decompress(gzip.compress(data), "gzip", 1000) == data
    assert oip.decompress(zlib.compress(data), "deflate", 1000) == data
    assert oip.decompress(data, "identity", 1000) == data
    fails(PayloadTooLargeError, "body_too_large", oip.decompress, gzip.compress(b"\0" * 100_000), "gzip", 1000)
    fails(BadRequestError, "body_undecodable", oip.decompress, b"not gzip", "gzip", 1000)
    fails(ServiceError, "content_encoding_unsupported", oip.decompress, data, "br", 1000)


def test_intrinsic_and_autoencoder_models() -> None:
    intrinsic = manifest(
        variant="intrinsic",
        class_names=[],
        latents=[
            {"name": "shape", "size": 8},
            {"name": "appearance", "size": 4},
            {"name": "shading_latent", "size": 3},
        ],
    )
    g = intrinsic.model_dump()["graphs"]
    g["encoder"]["outputs"] = [
        {"name": "shape", "shape": ["batch", 8]},
        {"name": "appearance", "shape": ["batch", 4]},
        {"name": "shading_latent", "shape": ["batch", 3]},
    ]
    g["texture"]["outputs"] = [{"name": n, "shape": ["batch", 1, 32, 32]} for n in ("texture", "albedo", "shading")]
    models = oip.models_for(
        manifest(variant="intrinsic", class_names=[], latents=intrinsic.model_dump()["latents"], graphs=g), "i"
    )
    assert [t.name for t in models["i-decoder"].inputs] == ["shape", "appearance", "shading_latent"]
    names = [t.name for t in models["i"].outputs]
    assert "class_probabilities" not in names and {"albedo", "shading", "shading_latent"} <= set(names)
