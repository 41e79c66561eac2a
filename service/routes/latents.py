"""Product endpoints that take latents: POST /decode and GET /interpolate.

    curl -H 'Content-Type: application/json' -d '{"latents": [{"code": "'$CODE'"}]}' \
        http://127.0.0.1:8000/decode
    curl "http://127.0.0.1:8000/interpolate?start=$A&end=$B&steps=8&factor=shape&format=gif" -o morph.gif

Interpolation is linear, ``z_t = (1 - t) z_start + t z_end`` with ``t = i / (steps - 1)``
(computed in float64), so the first and last frames are exactly the given latents. ``factor`` picks what
moves: ``shape`` (the shape latent), ``appearance`` (appearance and shading latents) or ``both`` (everything,
the class code included); what does not move stays at ``start``. All frames are one decoder batch.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response

from service import render
from service.engine import Engine, server_timing
from service.errors import PayloadTooLargeError, UnprocessableError
from service.routes.deps import EngineDep, StateDep, binary, check_auth, deadline, outputs_response
from service.routes.images import (
    DEFAULT_JSON,
    DEFAULT_PNG,
    ERRORS,
    OUTPUT_RESPONSES,
    ArraysQ,
    Format,
    Outputs,
)
from service.schemas import DecodeRequest, LatentInput, OutputsResponse

router = APIRouter(tags=["latents"], dependencies=[Depends(check_auth)])
MOVES = {
    "shape": ("shape",),
    "appearance": ("appearance", "shading_latent"),
    "both": ("shape", "appearance", "shading_latent", "class_code"),
}


def resolve(engine: Engine, lat: LatentInput, field: str) -> dict[str, np.ndarray]:
    """A code or explicit values → one latent row (each ``(1, D)``)."""
    explicit = (lat.shape, lat.appearance, lat.shading)
    if lat.code is not None:
        if any(v is not None for v in explicit):
            raise UnprocessableError(f"{field}: give a code or explicit values, not both", "latent_ambiguous")
        row = engine.from_code(lat.code, f"{field}.code")
        if lat.klass is not None:
            row["class_code"] = engine.class_code_for(lat.klass, f"{field}.class")
        return row
    return engine.from_values(field, lat.shape, lat.appearance, lat.shading, lat.klass)


@router.post("/decode", responses=OUTPUT_RESPONSES)
async def decode(
    request: Request,
    body: DecodeRequest,
    engine: EngineDep,
    state: StateDep,
    outputs: Outputs = None,
    format: Format = "json",
    arrays: ArraysQ = "png",
) -> Response:
    """Latents (codes from /encode or explicit values) → texture, deformation, reconstruction, pictures."""
    names = render.parse_outputs(outputs, engine.manifest, DEFAULT_PNG if format == "png" else DEFAULT_JSON)
    if len(body.latents) > engine.settings.max_images_per_request:
        raise PayloadTooLargeError(
            f"{len(body.latents)} latents exceed the limit of {engine.settings.max_images_per_request}",
            "too_many_latents",
        )
    rows = [resolve(engine, lat, f"latents[{i}]") for i, lat in enumerate(body.latents)]
    latents = {name: np.concatenate([r[name] for r in rows]) for name, _ in engine.latent_parts}
    outs, info = await engine.decode(latents, deadline(request, state))
    items: list[dict[str, Any]] = [
        {"index": i, "code": engine.code_for(latents, i)} for i in range(len(rows))
    ]
    headers = {"Server-Timing": server_timing([("decode", info)])}
    return outputs_response(engine, format, outs, names, latents, items, headers, arrays, "decode")


def floats(text: str | None, field: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise UnprocessableError(f"{field}: comma-separated numbers expected", "latent_malformed") from e


def endpoint(
    engine: Engine,
    which: str,
    code: str | None,
    shape: str | None,
    appearance: str | None,
    shading: str | None,
    klass: str | None,
) -> dict[str, np.ndarray]:
    if code is None and shape is None and appearance is None:
        raise UnprocessableError(
            f"{which}: give a code ({which}=...) or explicit values ({which}_shape=..., "
            f"{which}_appearance=...)",
            "latent_missing",
        )
    lat = LatentInput.model_validate({
        "code": code, "shape": floats(shape, f"{which}_shape"),
        "appearance": floats(appearance, f"{which}_appearance"),
        "shading": floats(shading, f"{which}_shading"), "class": klass})
    return resolve(engine, lat, which)


Latent = Annotated[str | None, Query(description="a latent code from /encode")]
Values = Annotated[str | None, Query(description="explicit latent values, comma-separated")]


@router.get(
    "/interpolate",
    responses={
        **OUTPUT_RESPONSES,
        200: {
            "model": OutputsResponse,
            "description": "JSON frames, a PNG strip (row per output), a GIF animation, or npz",
            "content": {"image/png": {}, "image/gif": {}, render.NPZ_MEDIA_TYPE: {}},
        },
        304: {"description": "not modified"},
        **ERRORS,
    },
)
async def interpolate(
    request: Request,
    engine: EngineDep,
    state: StateDep,
    start: Latent = None,
    end: Latent = None,
    steps: int = 8,
    factor: Literal["shape", "appearance", "both"] = "both",
    format: Literal["json", "png", "gif", "npz"] = "json",
    outputs: Outputs = None,
    arrays: ArraysQ = "png",
    start_shape: Values = None,
    start_appearance: Values = None,
    start_shading: Values = None,
    start_class: Annotated[str | None, Query()] = None,
    end_shape: Values = None,
    end_appearance: Values = None,
    end_shading: Values = None,
    end_class: Annotated[str | None, Query()] = None,
) -> Response:
    """Frames between two latent pairs, moving shape, appearance or both; one decoder batch. Cacheable."""
    limit = engine.settings.max_steps
    if not 2 <= steps <= limit:
        raise UnprocessableError(f"steps must be between 2 and {limit}, got {steps}", "steps_out_of_range")
    default = DEFAULT_JSON if format in ("json", "npz") else ["texture", "reconstruction", "warped_grid"]
    names = render.parse_outputs(outputs, engine.manifest, default)
    a = endpoint(engine, "start", start, start_shape, start_appearance, start_shading, start_class)
    b = endpoint(engine, "end", end, end_shape, end_appearance, end_shading, end_class)
    etag = (
        '"'
        + hashlib.sha256(
            (
                engine.manifest.sha256
                + "?"
                + "&".join(f"{k}={v}" for k, v in sorted(request.query_params.multi_items()))
            ).encode()
        ).hexdigest()[:32]
        + '"'
    )
    cache = {"ETag": etag, "Cache-Control": "public, max-age=3600"}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=cache)
    t = np.linspace(0.0, 1.0, steps)
    t[-1] = 1.0
    latents: dict[str, np.ndarray] = {}
    for name, _ in engine.latent_parts:
        za, zb = a[name].astype(np.float64), b[name].astype(np.float64)
        if name in MOVES[factor]:
            latents[name] = ((1.0 - t)[:, None] * za + t[:, None] * zb).astype(np.float32)
        else:
            latents[name] = np.repeat(a[name], steps, axis=0)
    outs, info = await engine.decode(latents, deadline(request, state))
    headers = {"Server-Timing": server_timing([("decode", info)]), **cache}
    scale = engine.settings.viz_scale
    if format == "gif":
        return binary(render.gif(outs, names, steps, scale), "image/gif", headers, "interpolation.gif")
    if format == "png":
        return binary(
            render.sheet_png(outs, names, steps, scale, by_row=False),
            "image/png",
            headers,
            "interpolation.png",
        )
    items: list[dict[str, Any]] = [
        {"index": i, "t": float(t[i]), "code": engine.code_for(latents, i)} for i in range(steps)
    ]
    return outputs_response(engine, format, outs, names, latents, items, headers, arrays, "interpolation")
