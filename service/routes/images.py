"""Product endpoints that take images: POST /encode, POST /reconstruct, POST /swap.

    curl -F images=@digit.png http://127.0.0.1:8000/encode
    curl --data-binary @digit.png -H 'Content-Type: image/png' \
        'http://127.0.0.1:8000/reconstruct?format=png' -o r.png
    curl -F shape=@a.png -F appearance=@b.png 'http://127.0.0.1:8000/swap?format=npz' -o swap.npz

Each handler translates HTTP to a use case (``service/usecases.py``) and back; nothing else.
"""

from __future__ import annotations

from typing import Any

from service import render
from service.http import Call, Endpoint, Reply, json_reply
from service.routes.outputs import (
    ARRAYS,
    BINARY,
    CLASS,
    ERRORS,
    FORMAT,
    OUTPUT_RESPONSES,
    OUTPUTS,
    defaults,
    outputs_reply,
)
from service.schemas import EncodeResponse

IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["images"],
                    "properties": {
                        "images": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one or more images (any field name is accepted)",
                        }
                    },
                }
            },
            "image/png": BINARY,
            "image/jpeg": BINARY,
            "image/webp": BINARY,
            "image/gif": BINARY,
        },
    }
}
SWAP_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["shape", "appearance"],
                    "properties": {
                        "shape": {
                            "type": "string",
                            "format": "binary",
                            "description": "image whose shape (deformation) is kept",
                        },
                        "appearance": {
                            "type": "string",
                            "format": "binary",
                            "description": "image whose appearance (texture, shading) is kept",
                        },
                    },
                }
            }
        },
    }
}


async def encode(call: Call) -> Reply:
    """Images → per image shape and appearance latents, class probabilities, a URL-safe latent code."""
    cases = call.cases
    files = await call.uploads(cases.engine.settings.max_images_per_request)
    enc = await cases.encode(files, call.deadline)
    return json_reply({"model": cases.engine.name, "items": enc.items}, {"Server-Timing": enc.timing})


async def reconstruct(call: Call) -> Reply:
    """Images → texture, deformation field (grid + displacement), reconstruction pictures."""
    cases, engine = call.cases, call.cases.engine
    fmt, arrays = call.param(FORMAT), call.param(ARRAYS)
    names = render.parse_outputs(call.param(OUTPUTS), engine.manifest, defaults(fmt))
    klass = call.param(CLASS)
    cases.class_override(klass)  # an unknown class is a 422 before the upload is read
    files = await call.uploads(engine.settings.max_images_per_request)
    out = await cases.reconstruct(files, call.deadline, klass)
    return outputs_reply(engine, fmt, out, names, arrays, "reconstruction")


async def swap(call: Call) -> Reply:
    """The shape of one image with the appearance of another (and, for class-aware models, a chosen class).

    Equals /decode of (shape latent of ``shape``, appearance [and shading] latent of ``appearance``);
    the class code is the chosen class's one-hot, or else the ``shape`` image's predicted probabilities.
    """
    cases, engine = call.cases, call.cases.engine
    fmt, arrays = call.param(FORMAT), call.param(ARRAYS)
    names = render.parse_outputs(call.param(OUTPUTS), engine.manifest, defaults(fmt))
    klass = call.param(CLASS)
    cases.class_override(klass)
    shape, appearance = await call.uploads(engine.settings.max_images_per_request, ("shape", "appearance"))
    out = await cases.swap(shape, appearance, call.deadline, klass)
    return outputs_reply(engine, fmt, out, names, arrays, "swap")


async def _doc() -> None:  # schema-only endpoint: the bodies are described in openapi_extra
    """never called: the middleware serves these paths"""


ENDPOINTS = (
    Endpoint(
        "POST",
        "/encode",
        encode,
        _doc,
        tags=("images",),
        responses=ERRORS,
        response_model=EncodeResponse,
        openapi_extra=IMAGE_BODY,
    ),
    Endpoint(
        "POST",
        "/reconstruct",
        reconstruct,
        _doc,
        params=(OUTPUTS, FORMAT, ARRAYS, CLASS),
        tags=("images",),
        responses=OUTPUT_RESPONSES,
        openapi_extra=IMAGE_BODY,
    ),
    Endpoint(
        "POST",
        "/swap",
        swap,
        _doc,
        params=(OUTPUTS, FORMAT, ARRAYS, CLASS),
        tags=("images",),
        responses=OUTPUT_RESPONSES,
        openapi_extra=SWAP_BODY,
    ),
)
