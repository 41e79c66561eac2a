"""Product endpoints that take images: POST /encode, POST /reconstruct, POST /swap.

    curl -F images=@digit.png http://127.0.0.1:8000/encode
    curl --data-binary @digit.png -H 'Content-Type: image/png' \
        'http://127.0.0.1:8000/reconstruct?format=png' -o r.png
    curl -F shape=@a.png -F appearance=@b.png 'http://127.0.0.1:8000/swap?format=npz' -o swap.npz
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from service import render
from service.engine import server_timing
from service.routes.deps import (
    EngineDep,
    StateDep,
    check_auth,
    deadline,
    decode_images,
    outputs_response,
    read_uploads,
)
from service.schemas import EncodedItem, EncodeResponse, ErrorResponse, OutputsResponse

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "undecodable or truncated image, malformed multipart body"),
        (401, "missing or wrong bearer token"),
        (413, "body, image or image count over the limits"),
        (415, "unsupported content type or image mode"),
        (422, "invalid parameters"),
        (429, "queue full (see Retry-After)"),
        (503, "not ready or draining"),
        (504, "deadline exceeded"),
    )
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
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
            "image/png": _BINARY,
            "image/jpeg": _BINARY,
            "image/webp": _BINARY,
            "image/gif": _BINARY,
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
OUTPUT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": OutputsResponse,
        "description": "JSON (default), an .npz of float32 arrays, or one PNG sheet",
        "content": {render.NPZ_MEDIA_TYPE: _BINARY, "image/png": _BINARY},
    },
    **ERRORS,
}

Outputs = Annotated[
    str | None,
    Query(
        description="comma-separated: texture, reconstruction, albedo, shading, "
        "grid, displacement (or deformation), increments, affine, "
        "warped_grid, flow, all",
        examples=["texture,deformation"],
    ),
]
Format = Annotated[
    Literal["json", "npz", "png"], Query(description="json (PNG base64 + arrays), npz, or png")
]
ArraysQ = Annotated[
    Literal["png", "values", "both"], Query(description="JSON images as base64 PNG, float arrays, or both")
]
ClassQ = Annotated[
    str | None,
    Query(
        alias="class",
        description="class-aware models: decode as this class "
        "(index or name) instead of the predicted probabilities",
    ),
]
DEFAULT_JSON = [
    "texture",
    "reconstruction",
    "albedo",
    "shading",
    "grid",
    "displacement",
    "warped_grid",
    "flow",
]
DEFAULT_PNG = ["texture", "reconstruction", "albedo", "shading", "warped_grid", "flow"]

router = APIRouter(tags=["images"], dependencies=[Depends(check_auth)])


def defaults(fmt: str) -> list[str]:
    return DEFAULT_PNG if fmt == "png" else DEFAULT_JSON


@router.post("/encode", response_model=EncodeResponse, responses=ERRORS, openapi_extra=IMAGE_BODY)
async def encode(request: Request, engine: EngineDep, state: StateDep) -> JSONResponse:
    """Images → per image shape and appearance latents, class probabilities, a URL-safe latent code."""
    t0 = time.perf_counter()
    images = await decode_images(engine, await read_uploads(request, engine.settings))
    t_images = time.perf_counter() - t0
    latents, info = await engine.encode(images, deadline(request, state))
    names = engine.manifest.class_names
    items = []
    for i in range(len(images)):
        item = EncodedItem(
            index=i,
            shape=latents["shape"][i].tolist() if "shape" in latents else [],
            appearance=latents["appearance"][i].tolist(),
            code=engine.code_for(latents, i),
        )
        if "shading_latent" in latents:
            item.shading = latents["shading_latent"][i].tolist()
        if "class_code" in latents:
            probs = latents["class_code"][i]
            item.class_probabilities = probs.tolist()
            item.predicted_class = int(np.argmax(probs))
            item.predicted_label = names[item.predicted_class]
        items.append(item)
    body = EncodeResponse(model=engine.name, items=items)
    return JSONResponse(
        body.model_dump(exclude_none=True),
        headers={"Server-Timing": server_timing([("encode", info)], {"images": t_images})},
    )


@router.post("/reconstruct", responses=OUTPUT_RESPONSES, openapi_extra=IMAGE_BODY)
async def reconstruct(
    request: Request,
    engine: EngineDep,
    state: StateDep,
    outputs: Outputs = None,
    format: Format = "json",
    arrays: ArraysQ = "png",
    klass: ClassQ = None,
) -> Response:
    """Images → texture, deformation field (grid + displacement), reconstruction pictures."""
    names = render.parse_outputs(outputs, engine.manifest, defaults(format))
    override = engine.class_code_for(klass) if klass is not None else None
    t0 = time.perf_counter()
    images = await decode_images(engine, await read_uploads(request, engine.settings))
    t_images = time.perf_counter() - t0
    until = deadline(request, state)
    latents, enc_info = await engine.encode(images, until)
    if override is not None:
        latents["class_code"] = np.repeat(override, len(images), axis=0)
    outs, dec_info = await engine.decode(latents, until)
    items: list[dict[str, Any]] = [
        {"index": i, "code": engine.code_for(latents, i)} for i in range(len(images))
    ]
    headers = {
        "Server-Timing": server_timing([("encode", enc_info), ("decode", dec_info)], {"images": t_images})
    }
    return outputs_response(engine, format, outs, names, latents, items, headers, arrays, "reconstruction")


@router.post("/swap", responses=OUTPUT_RESPONSES, openapi_extra=SWAP_BODY)
async def swap(
    request: Request,
    engine: EngineDep,
    state: StateDep,
    outputs: Outputs = None,
    format: Format = "json",
    arrays: ArraysQ = "png",
    klass: ClassQ = None,
) -> Response:
    """The shape of one image with the appearance of another (and, for class-aware models, a chosen class).

    Equals /decode of (shape latent of ``shape``, appearance [and shading] latent of ``appearance``);
    the class code is the chosen class's one-hot, or else the ``shape`` image's predicted probabilities.
    """
    names = render.parse_outputs(outputs, engine.manifest, defaults(format))
    override = engine.class_code_for(klass) if klass is not None else None
    images = await decode_images(
        engine, await read_uploads(request, engine.settings, ("shape", "appearance"))
    )
    until = deadline(request, state)
    enc, enc_info = await engine.encode(images, until)
    mixed = {name: enc[name][1:2] for name, _ in engine.latent_parts}  # appearance side: appearance, shading
    if "shape" in enc:
        mixed["shape"] = enc["shape"][0:1]
    if "class_code" in enc:
        mixed["class_code"] = override if override is not None else enc["class_code"][0:1]
    outs, dec_info = await engine.decode(mixed, until)
    items: list[dict[str, Any]] = [{"index": 0, "code": engine.code_for(mixed, 0)}]
    headers = {"Server-Timing": server_timing([("encode", enc_info), ("decode", dec_info)])}
    return outputs_response(engine, format, outs, names, mixed, items, headers, arrays, "swap")
