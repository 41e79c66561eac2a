"""Open Inference Protocol inference: ``POST /v2/models/{name}[/versions/{version}]/infer``.

    curl -s localhost:8000/v2/models/mnist/infer -H 'Content-Type: application/json' \
      -d '{"id": "1", "inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 32, 32],
           "data": [0, 0, ...1024 values in [0, 1]...]}], "outputs": [{"name": "reconstruction"}]}'

The codec is service/oip.py. The work goes through the engine's two batch queues exactly as ``/reconstruct``
and ``/decode`` do (``engine.encode`` / ``engine.decode``): same batching with REST traffic, same queue
limits, deadlines, metrics and auth; the admission limit (DAE_MAX_INFLIGHT) and the body limit apply too
(service/middleware.py counts these routes as product routes).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from starlette.requests import ClientDisconnect

from service import oip
from service.batching import BatchInfo
from service.engine import Engine, server_timing
from service.http import admitted
from service.schemas import InferResponseBody, OipError
from service.state import EngineDep, StateDep, check_auth, deadline

log = logging.getLogger("service.oip")
CLIENT_CLOSED = 499  # as service/middleware.py: nginx's code for "the client closed the request before the answer"
# Protocol extensions this server implements (GET /v2 lists them; Triton's client and perf tools read it).
EXTENSIONS = ("binary_tensor_data",)
# Bodies above this are parsed and built in a worker thread; small ones inline (a thread hop costs ~0.1 ms).
INLINE_BYTES = 256 * 1024
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_TENSOR = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string", "examples": ["image"]},
        "datatype": {"type": "string", "enum": [*oip.NUMPY, "BYTES"]},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "examples": [[1, 1, 32, 32]]},
        "parameters": {"type": "object", "description": "binary_data_size: bytes of this input after the JSON"},
        "data": {"type": "array", "description": "row-major values, flat or nested"},
    },
}
_REQUEST_SCHEMA = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object", "description": "binary_data_output (bool), timeout (microseconds)"},
        "inputs": {"type": "array", "minItems": 1, "items": _TENSOR},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "examples": ["reconstruction"]},
                    "parameters": {"type": "object", "description": "binary_data (bool)"},
                },
            },
        },
    },
}
INFER_DOC: dict[str, Any] = {
    "parameters": [
        {
            "name": oip.HEADER,
            "in": "header",
            "required": False,
            "schema": {"type": "integer", "minimum": 0},
            "description": "binary tensor extension: the byte length of the JSON header at the body's start",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            oip.JSON_TYPE: {"schema": _REQUEST_SCHEMA},
            oip.BINARY_TYPE: _BINARY,
        },
    },
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": InferResponseBody,
        "description": f"JSON, or (binary outputs) the JSON header then the raw tensors, with {oip.HEADER}",
        "content": {oip.BINARY_TYPE: _BINARY},
    },
    **{
        code: {"model": OipError, "description": text}
        for code, text in (
            (400, "malformed request, wrong input name, datatype, shape or values"),
            (401, "missing or wrong bearer token"),
            (404, "no such model or version"),
            (413, "body or batch over the limits"),
            (415, "unsupported content type or encoding"),
            (422, "invalid parameters"),
            (429, "queue full (see Retry-After)"),
            (503, "not ready or draining"),
            (504, "deadline exceeded"),
        )
    },
}

router = APIRouter(tags=["open inference protocol"], dependencies=[Depends(check_auth)])
_models: WeakKeyDictionary[Engine, dict[str, oip.OipModel]] = WeakKeyDictionary()


def oip_models(engine: Engine) -> dict[str, oip.OipModel]:
    """The OIP models of the loaded bundle (``name`` and ``name-decoder``), built once per engine."""
    models = _models.get(engine)
    if models is None:
        models = _models[engine] = oip.models_for(engine.manifest, engine.name)
    return models


async def _maybe_thread(big: bool, fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args) if big else fn(*args)


async def infer(request: Request, engine: Engine, state: StateDep, name: str, version: str | None) -> Response:
    settings = engine.settings
    model = oip.resolve(oip_models(engine), name, version)
    oip.check_content_type(request.headers.get("content-type", ""))
    try:
        raw = await request.body()
    except ClientDisconnect:  # gone before its request was read: a quiet line and a counter, not a traceback
        state.metrics.disconnects.labels(oip.INFER_ROUTE).inc()
        log.info("client disconnected", extra={"endpoint": oip.INFER_ROUTE})
        return Response(status_code=CLIENT_CLOSED)
    body = oip.decompress(raw, request.headers.get("content-encoding", ""), settings.max_body_bytes)
    length = oip.header_length(request.headers.get(oip.HEADER), len(body))
    big = len(body) > INLINE_BYTES
    req: oip.InferRequest = await _maybe_thread(big, oip.parse_request, body, length)
    arrays = oip.check_inputs(model, req, settings.max_images_per_request)
    wanted = oip.requested(model, req)
    until = deadline(request, state)
    if req.timeout_s is not None:  # Triton's per-request timeout (microseconds) can only shorten ours
        until = min(until, until - settings.deadline_s + req.timeout_s)
    names = {t.name for t, _ in wanted}
    infos: list[tuple[str, BatchInfo]] = []
    values: dict[str, Any] = {}
    if model.kind == "reconstruct":
        images = arrays["image"]
        latents, enc_info = await engine.encode(images, until)
        infos.append(("encode", enc_info))
        values.update(latents)
        if "class_code" in latents:
            values["class_probabilities"] = latents["class_code"]
        if names - model.encoder_outputs:
            outs, dec_info = await engine.decode(latents, until)
            infos.append(("decode", dec_info))
            values.update(outs)
        if "code" in names:
            values["code"] = engine.codes_for(latents)
    else:
        outs, dec_info = await engine.decode(arrays, until)
        infos.append(("decode", dec_info))
        values.update(outs)
    tensors = [(t, values[t.name], binary) for t, binary in wanted]
    size = sum(v.nbytes for v in values.values() if isinstance(v, np.ndarray))
    content, headers = await _maybe_thread(size > INLINE_BYTES, oip.encode_response, model, req.id, tensors)
    media_type = headers.pop("Content-Type")
    headers["Server-Timing"] = server_timing(infos)
    return Response(content, media_type=media_type, headers=headers)


@router.post("/v2/models/{name}/infer", responses=RESPONSES, openapi_extra=INFER_DOC)
@admitted
async def model_infer(name: str, request: Request, engine: EngineDep, state: StateDep) -> Response:
    """Inference (Open Inference Protocol, JSON or binary tensors): ``mnist`` takes preprocessed images and
    gives latents, class probabilities, texture, deformation and reconstruction; ``mnist-decoder`` takes
    latents and gives the images. ``GET /v2/models/{name}`` lists each model's tensors."""
    return await infer(request, engine, state, name, None)


@router.post("/v2/models/{name}/versions/{version}/infer", responses=RESPONSES, openapi_extra=INFER_DOC)
@admitted
async def model_version_infer(
    name: str, version: str, request: Request, engine: EngineDep, state: StateDep
) -> Response:
    """Inference on one version of a model (this server has one per model: the bundle's)."""
    return await infer(request, engine, state, name, version)
