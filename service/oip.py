"""Open Inference Protocol v2 (KServe REST) codec, with Triton's binary tensor extension. No I/O, no engine.

    models = oip.models_for(manifest, "mnist")           # {"mnist": ..., "mnist-decoder": ...}
    req = oip.parse_request(body, header_length)         # JSON, or JSON + binary tensors
    arrays = oip.check_inputs(models["mnist"], req, max_batch=64)
    body, headers = oip.encode_response(model, req.id, tensors)

Two models per bundle:

- ``<name>``: ``image`` FP32 ``[-1, C, N, N]`` (already preprocessed: values in [0, 1], NCHW) in; out, what
  ``/reconstruct`` computes: the latents (``shape``, ``appearance`` [, ``shading_latent``]), for class-aware
  models ``class_logits`` and ``class_probabilities`` (their softmax, what the decoders read), the decoder
  outputs (``texture`` [, ``albedo``, ``shading``], ``increments`` [, ``affine``], ``grid``, ``displacement``,
  ``reconstruction``) and ``code`` (BYTES: the latent code /interpolate and /decode take);
- ``<name>-decoder``: the latents in (``shape``, ``appearance`` [, ``shading_latent``] [, ``class_code``:
  class probabilities or a one-hot], FP32 ``[-1, D]``), the decoder outputs out: interpolate latents on the
  client and decode them here.

Binary tensors (https://github.com/triton-inference-server/server, docs/protocol/extension_binary_data.md):
the body is the JSON header (``Inference-Header-Content-Length`` bytes) followed by each binary input's raw
little-endian row-major bytes, in the order of the inputs that carry ``parameters.binary_data_size``. Outputs
are binary when the output asks (``parameters.binary_data``) or, failing that, when the request does
(``parameters.binary_data_output``); BYTES elements are each a 4-byte little-endian length and the bytes.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import orjson

from bundle.manifest import Manifest
from service.errors import BadRequestError, NotFoundError, PayloadTooLargeError, UnsupportedMediaTypeError

HEADER = "Inference-Header-Content-Length"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
DECODER_SUFFIX = "-decoder"
PLATFORM = "onnxruntime_onnx"  # Triton's name for an ONNX Runtime model
INFER_ROUTE = "/v2/models/{name}/infer"  # the label of both inference routes in logs and disconnect counts
NUMPY: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
LATENT_LIMIT = 1e6  # as service.engine.LATENT_LIMIT: no encoder produces more, and decoders would overflow
IMAGE_RANGE = (0.0, 1.0)
DIMS_MAX = 8  # no tensor of these models has more dimensions


# -- models -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1: variable (the batch)

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class OipModel:
    name: str
    version: str
    kind: Literal["reconstruct", "decoder"]
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    encoder_outputs: frozenset[str] = frozenset()  # outputs the encoder alone gives (no decoder run needed)

    def output(self, name: str) -> Tensor | None:
        return next((t for t in self.outputs if t.name == name), None)

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORM,
            "inputs": [t.metadata() for t in self.inputs],
            "outputs": [t.metadata() for t in self.outputs],
        }


def _dims(shape: Sequence[int | str]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else -1 for d in shape)


def latent_tensors(m: Manifest) -> list[Tensor]:
    """What the decoders read, in the engine's order: shape, appearance, shading_latent, class_code."""
    sizes = [(n, m.latent_size(n)) for n in ("shape", "appearance", "shading_latent")]
    sizes.append(("class_code", m.num_classes))
    return [Tensor(n, "FP32", (-1, s)) for n, s in sizes if s > 0]


def decoder_tensors(m: Manifest) -> list[Tensor]:
    """Every decoder output, from the manifest's graphs (the plain autoencoder's texture is its reconstruction)."""
    inputs = {t.name for t in latent_tensors(m)}
    out: dict[str, Tensor] = {}
    for key in ("texture", "deformation", "warp"):
        if key in m.graphs:
            for spec in m.graphs[key].outputs:
                if spec.name not in inputs:
                    out.setdefault(spec.name, Tensor(spec.name, "FP32", _dims(spec.shape)))
    if "reconstruction" not in out:
        out["reconstruction"] = Tensor("reconstruction", "FP32", out["texture"].shape)
    return list(out.values())


def models_for(m: Manifest, name: str) -> dict[str, OipModel]:
    """The two OIP models of a bundle served as ``name``: ``name`` itself and ``name-decoder``."""
    image = Tensor("image", "FP32", (-1, m.channels, m.image_size, m.image_size))
    encoded = [Tensor(s.name, "FP32", _dims(s.shape)) for s in m.graphs["encoder"].outputs]
    if m.num_classes:
        encoded.append(Tensor("class_probabilities", "FP32", (-1, m.num_classes)))
    encoded.append(Tensor("code", "BYTES", (-1,)))
    decoded = decoder_tensors(m)
    return {
        name: OipModel(
            name, m.version, "reconstruct", (image,), (*encoded, *decoded), frozenset(t.name for t in encoded)
        ),
        name + DECODER_SUFFIX: OipModel(
            name + DECODER_SUFFIX, m.version, "decoder", tuple(latent_tensors(m)), tuple(decoded)
        ),
    }


def resolve(models: dict[str, OipModel], name: str, version: str | None) -> OipModel:
    model = models.get(name)
    if model is None:
        raise NotFoundError(f"no model named {name!r}; this server serves {sorted(models)}", "model_not_found")
    if version is not None and version != model.version:
        raise NotFoundError(
            f"model {name!r} has no version {version!r}; it has {[model.version]}", "model_version_not_found"
        )
    return model


# -- requests -----------------------------------------------------------------------------------------------


@dataclass
class RequestedOutput:
    name: str
    binary: bool | None  # None: the request's default


@dataclass
class InferRequest:
    id: str | None
    inputs: dict[str, tuple[str, tuple[int, ...], np.ndarray]]  # name → (datatype, shape, flat values)
    outputs: list[RequestedOutput] | None
    binary_output: bool = False
    timeout_s: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def check_content_type(content_type: str) -> None:
    """None, JSON or octet-stream (Triton's client sends none, KServe's octet-stream for binary bodies)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind not in ("", JSON_TYPE, BINARY_TYPE):
        raise UnsupportedMediaTypeError(
            f"content type {kind} is not accepted here: send {JSON_TYPE}, or the binary tensor format "
            f"({HEADER} + raw tensors) as {BINARY_TYPE} or with no content type",
            "unsupported_media_type",
        )


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """``Content-Encoding: gzip | deflate`` (tritonclient's request compression), at most ``limit`` bytes out."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise UnsupportedMediaTypeError(
            f"content encoding {encoding!r} is not supported (gzip, deflate or none)", "content_encoding_unsupported"
        )
    d = zlib.decompressobj(31 if encoding == "gzip" else 15)
    try:
        out = d.decompress(body, limit)
    except zlib.error as e:
        raise BadRequestError(f"the {encoding} body does not decompress: {e}", "body_undecodable") from e
    if d.unconsumed_tail:  # a compression bomb stops here, at the body limit
        raise PayloadTooLargeError(
            f"the decompressed request body exceeds the limit of {limit} bytes", "body_too_large"
        )
    return out


def header_length(value: str | None, body_size: int) -> int | None:
    if value is None:
        return None
    if not value.strip().isdigit():
        raise BadRequestError(f"{HEADER} must be a byte count, got {value!r}", "inference_header_invalid")
    n = int(value)
    if n > body_size:
        raise BadRequestError(f"{HEADER} is {n} but the body has only {body_size} bytes", "inference_header_invalid")
    return n


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequestError(f"{what} must be a JSON object", "request_invalid")
    return value


def _parameters(obj: dict[str, Any], what: str) -> dict[str, Any]:
    params = obj.get("parameters", {})
    if params is None:
        return {}
    params = _object(params, f"{what}.parameters")
    if "shared_memory_region" in params:
        raise BadRequestError(f"{what}: shared memory is not supported by this server", "parameter_unsupported")
    return params


def _shape(value: Any, what: str) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or len(value) > DIMS_MAX
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value)
    ):
        raise BadRequestError(
            f"{what}.shape must be a list of at most {DIMS_MAX} non-negative integers, got {value!r}"[:300],
            "input_shape",
        )
    return tuple(value)


def _flatten(data: Any, what: str) -> list[Any]:
    """Row-major values of a flat or nested JSON list (the protocol allows both)."""
    if not isinstance(data, list):
        return [data]
    if not data or not isinstance(data[0], list):
        return data
    out: list[Any] = []
    stack: list[Any] = [data]
    while stack:  # iterative: a deeply nested body must not exhaust the recursion limit
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _json_values(data: Any, datatype: str, count: int, what: str) -> np.ndarray:
    if datatype == "BYTES":
        flat = _flatten(data, what)
        if len(flat) != count:
            raise BadRequestError(f"{what}: {len(flat)} values for a shape of {count} elements", "input_data_invalid")
        if not all(isinstance(v, str) for v in flat):
            raise BadRequestError(f"{what}: BYTES data must be strings", "input_data_invalid")
        return np.array(flat, dtype=object)
    # numpy reads the (flat or rectangular nested) lists and infers their kind in C: a Python loop over every
    # value would cost more than the model at 32x32. Numbers give ints or floats, true/false bool, anything
    # else (strings, null, objects, huge integers) another kind; ragged nesting is a ValueError.
    try:
        arr = np.asarray(data if isinstance(data, list) else [data]).reshape(-1)
    except ValueError as e:
        raise BadRequestError(
            f"{what}: data must be a flat or rectangular nested list ({e})", "input_data_invalid"
        ) from e
    if arr.size != count:
        raise BadRequestError(f"{what}: {arr.size} values for a shape of {count} elements", "input_data_invalid")
    if arr.size and arr.dtype.kind not in ("b" if datatype == "BOOL" else "iuf"):
        raise BadRequestError(f"{what}: data must be {datatype} numbers, flat or nested lists", "input_data_invalid")
    try:
        return arr.astype(NUMPY[datatype])
    except (OverflowError, ValueError) as e:
        raise BadRequestError(f"{what}: {e}", "input_data_invalid") from e


def _binary_values(raw: bytes, datatype: str, count: int, what: str) -> np.ndarray:
    if datatype == "BYTES":
        out, at = [], 0
        while at < len(raw):
            if at + 4 > len(raw):
                raise BadRequestError(f"{what}: truncated BYTES element", "binary_size_mismatch")
            (n,) = struct.unpack_from("<I", raw, at)
            if at + 4 + n > len(raw):
                raise BadRequestError(f"{what}: truncated BYTES element", "binary_size_mismatch")
            out.append(raw[at + 4 : at + 4 + n].decode("utf-8", "replace"))
            at += 4 + n
        if len(out) != count:
            raise BadRequestError(f"{what}: {len(out)} BYTES elements for {count}", "binary_size_mismatch")
        return np.array(out, dtype=object)
    dtype = np.dtype(NUMPY[datatype]).newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise BadRequestError(
            f"{what}: binary_data_size is {len(raw)} bytes, but {datatype} of shape with {count} elements "
            f"needs {count * dtype.itemsize}",
            "binary_size_mismatch",
        )
    return np.frombuffer(raw, dtype=dtype)


def parse_request(body: bytes, json_length: int | None) -> InferRequest:
    """Parse an inference request: the JSON header, then the binary inputs it announces, in order."""
    head = body if json_length is None else body[:json_length]
    rest = b"" if json_length is None else body[json_length:]
    if not head.strip():
        raise BadRequestError("empty inference request: send a JSON object with 'inputs'", "request_invalid")
    try:
        doc = orjson.loads(head)  # several times faster than json on the number lists of JSON tensors
    except orjson.JSONDecodeError as e:
        hint = "" if json_length is not None else f" (binary tensors need the {HEADER} header)"
        raise BadRequestError(f"the inference request is not valid JSON: {e}{hint}"[:500], "request_invalid") from e
    doc = _object(doc, "the inference request")
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise BadRequestError("id must be a string", "request_invalid")
    params = _parameters(doc, "request")
    if params.get("sequence_id") not in (None, 0, ""):
        raise BadRequestError("sequence_id: these models are stateless (no sequence batching)", "parameter_unsupported")
    timeout_s = None
    if "timeout" in params:
        t = params["timeout"]
        if not isinstance(t, int) or isinstance(t, bool) or t <= 0:
            raise BadRequestError("parameters.timeout must be a positive integer (microseconds)", "request_invalid")
        timeout_s = t / 1e6
    inputs_doc = doc.get("inputs")
    if not isinstance(inputs_doc, list) or not inputs_doc:
        raise BadRequestError("'inputs' must be a non-empty list of tensors", "request_invalid")
    inputs: dict[str, tuple[str, tuple[int, ...], np.ndarray]] = {}
    at = 0
    for i, t in enumerate(inputs_doc):
        t = _object(t, f"inputs[{i}]")
        name = t.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequestError(f"inputs[{i}].name must be a non-empty string", "request_invalid")
        what = f"input {name!r}"
        if name in inputs:
            raise BadRequestError(f"{what} is given twice", "input_duplicate")
        datatype = t.get("datatype")
        if datatype not in NUMPY and datatype != "BYTES":
            raise BadRequestError(
                f"{what}: unknown datatype {datatype!r}; one of {[*NUMPY, 'BYTES']}"[:300], "input_datatype"
            )
        shape = _shape(t.get("shape"), what)
        count = math.prod(shape)
        size = _parameters(t, what).get("binary_data_size")
        if size is not None:
            if json_length is None:
                raise BadRequestError(
                    f"{what} has binary_data_size but the request has no {HEADER} header", "inference_header_invalid"
                )
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or at + size > len(rest):
                raise BadRequestError(
                    f"{what}: binary_data_size {size!r} runs past the end of the body "
                    f"({len(rest) - at} binary bytes left)",
                    "binary_size_mismatch",
                )
            values = _binary_values(rest[at : at + size], datatype, count, what)
            at += size
        elif "data" in t:
            values = _json_values(t["data"], datatype, count, what)
        else:
            raise BadRequestError(f"{what} has neither 'data' nor parameters.binary_data_size", "input_data_invalid")
        inputs[name] = (datatype, shape, values)
    if at != len(rest):
        raise BadRequestError(
            f"{len(rest) - at} bytes after the last binary input: {HEADER} or a binary_data_size is wrong",
            "binary_size_mismatch",
        )
    outputs = None
    if "outputs" in doc and doc["outputs"] is not None:
        if not isinstance(doc["outputs"], list):
            raise BadRequestError("'outputs' must be a list", "request_invalid")
        outputs = []
        for i, o in enumerate(doc["outputs"]):
            o = _object(o, f"outputs[{i}]")
            name = o.get("name")
            if not isinstance(name, str) or not name:
                raise BadRequestError(f"outputs[{i}].name must be a non-empty string", "request_invalid")
            oparams = _parameters(o, f"output {name!r}")
            if oparams.get("classification"):
                raise BadRequestError(
                    f"output {name!r}: the classification extension is not supported", "parameter_unsupported"
                )
            binary = oparams.get("binary_data")
            outputs.append(RequestedOutput(name, bool(binary) if binary is not None else None))
    return InferRequest(rid, inputs, outputs, bool(params.get("binary_data_output", False)), timeout_s, params)


def check_inputs(model: OipModel, req: InferRequest, max_batch: int) -> dict[str, np.ndarray]:
    """The request's inputs as arrays of the model's shapes; every model input given, nothing else."""
    unknown = sorted(set(req.inputs) - {t.name for t in model.inputs})
    if unknown:
        raise BadRequestError(
            f"model {model.name!r} has no input {unknown[0]!r}; its inputs are {[t.name for t in model.inputs]}",
            "input_unknown",
        )
    out: dict[str, np.ndarray] = {}
    batch = None
    for spec in model.inputs:
        if spec.name not in req.inputs:
            raise BadRequestError(
                f"model {model.name!r} needs input {spec.name!r} ({spec.datatype} {list(spec.shape)})", "input_missing"
            )
        datatype, shape, values = req.inputs[spec.name]
        what = f"input {spec.name!r}"
        if datatype != spec.datatype:
            raise BadRequestError(f"{what}: datatype {datatype}, the model expects {spec.datatype}", "input_datatype")
        if len(shape) != len(spec.shape) or any(w not in (-1, g) for w, g in zip(spec.shape, shape, strict=True)):
            raise BadRequestError(f"{what}: shape {list(shape)}, the model expects {list(spec.shape)}", "input_shape")
        if shape[0] < 1:
            raise BadRequestError(f"{what}: the batch is empty", "input_shape")
        if shape[0] > max_batch:
            raise PayloadTooLargeError(
                f"{what}: a batch of {shape[0]} exceeds the limit of {max_batch} per request", "too_many_images"
            )
        if batch is not None and shape[0] != batch:
            raise BadRequestError(f"{what}: batch {shape[0]}, other inputs have {batch}", "input_shape")
        batch = shape[0]
        arr = np.ascontiguousarray(values.reshape(shape), dtype=np.float32)
        if not np.isfinite(arr).all():
            raise BadRequestError(f"{what}: values must be finite", "input_not_finite")
        if model.kind == "reconstruct":
            lo, hi = IMAGE_RANGE
            if arr.size and (arr.min() < lo or arr.max() > hi):
                raise BadRequestError(
                    f"{what}: values must be in [{lo:g}, {hi:g}] (preprocessed: pixel / 255, NCHW); "
                    f"got [{arr.min():g}, {arr.max():g}]",
                    "input_out_of_range",
                )
        elif arr.size and np.abs(arr).max() > LATENT_LIMIT:
            raise BadRequestError(f"{what}: |value| above {LATENT_LIMIT:g}", "input_out_of_range")
        out[spec.name] = arr
    return out


def requested(model: OipModel, req: InferRequest) -> list[tuple[Tensor, bool]]:
    """The outputs to return, each with whether it goes binary; all of them when none were named."""
    if req.outputs is None:
        return [(t, req.binary_output) for t in model.outputs]
    out: list[tuple[Tensor, bool]] = []
    for o in req.outputs:
        spec = model.output(o.name)
        if spec is None:
            raise BadRequestError(
                f"model {model.name!r} has no output {o.name!r}; its outputs are {[t.name for t in model.outputs]}",
                "output_unknown",
            )
        if any(t.name == o.name for t, _ in out):
            raise BadRequestError(f"output {o.name!r} is requested twice", "output_duplicate")
        out.append((spec, req.binary_output if o.binary is None else o.binary))
    return out


# -- responses ----------------------------------------------------------------------------------------------


def _bytes_binary(values: Sequence[str]) -> bytes:
    parts = []
    for v in values:
        b = v.encode()
        parts += [struct.pack("<I", len(b)), b]
    return b"".join(parts)


def encode_response(
    model: OipModel, request_id: str | None, tensors: Sequence[tuple[Tensor, np.ndarray | list[str], bool]]
) -> tuple[bytes, dict[str, str]]:
    """The response body and its content headers: plain JSON, or JSON + binary outputs after it."""
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for spec, value, binary in tensors:
        if spec.datatype == "BYTES":
            strings = list(value)
            shape = [len(strings)]
            raw: bytes | None = _bytes_binary(strings) if binary else None
            data: Any = strings
        else:
            arr = np.ascontiguousarray(value, dtype=np.float32)
            shape = list(arr.shape)
            raw = arr.astype("<f4", copy=False).tobytes() if binary else None
            data = None if binary else arr.ravel()  # orjson writes float32 arrays itself (exact round trip)
        entry: dict[str, Any] = {"name": spec.name, "datatype": spec.datatype, "shape": shape}
        if raw is not None:
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = data
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request_id is not None:
        doc["id"] = request_id
    doc["outputs"] = outputs
    head = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return head, {"Content-Type": JSON_TYPE}
    return b"".join([head, *blobs]), {"Content-Type": BINARY_TYPE, HEADER: str(len(head))}
