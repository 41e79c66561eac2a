"""What the decoding endpoints share: their query parameters, OpenAPI responses, and the reply rendering
(JSON with base64 PNGs and float arrays, an .npz of exact float32 arrays, or one PNG sheet)."""

from __future__ import annotations

from typing import Any

from service import render
from service.engine import Engine
from service.http import Param, Reply, json_reply
from service.schemas import ErrorResponse, OutputsResponse
from service.usecases import Decoded

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
BINARY: dict[str, Any] = {"schema": {"type": "string", "format": "binary"}}
OUTPUT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": OutputsResponse,
        "description": "JSON (default), an .npz of float32 arrays, or one PNG sheet",
        "content": {render.NPZ_MEDIA_TYPE: BINARY, "image/png": BINARY},
    },
    **ERRORS,
}

OUTPUTS = Param(
    "outputs",
    "comma-separated: texture, reconstruction, albedo, shading, grid, displacement (or deformation), "
    "increments, affine, warped_grid, flow, all",
    examples=("texture,deformation",),
)
FORMAT = Param("format", "json (PNG base64 + arrays), npz, or png", ("json", "npz", "png"), "json")
ARRAYS = Param("arrays", "JSON images as base64 PNG, float arrays, or both", ("png", "values", "both"), "png")
CLASS = Param(
    "class",
    "class-aware models: decode as this class (index or name) instead of the predicted probabilities",
)
DEFAULT_JSON = ["texture", "reconstruction", "albedo", "shading", "grid", "displacement", "warped_grid", "flow"]
DEFAULT_PNG = ["texture", "reconstruction", "albedo", "shading", "warped_grid", "flow"]


def defaults(fmt: str) -> list[str]:
    return DEFAULT_PNG if fmt == "png" else DEFAULT_JSON


def binary(body: bytes, media_type: str, headers: dict[str, str], filename: str | None = None) -> Reply:
    if filename:
        headers = {**headers, "Content-Disposition": f'inline; filename="{filename}"'}
    return Reply(body, media_type, 200, headers)


def outputs_reply(
    engine: Engine, fmt: str, d: Decoded, names: list[str], arrays: render.ArraysMode, stem: str
) -> Reply:
    """JSON / npz / PNG rendering shared by /reconstruct, /decode, /swap and /interpolate."""
    headers = {"Server-Timing": d.timing, **d.headers}
    count = len(d.items)
    scale = engine.settings.viz_scale
    if fmt == "npz":
        data = render.npz_bytes(render.npz_arrays(d.outputs, names, d.latents))
        return binary(data, render.NPZ_MEDIA_TYPE, headers, f"{stem}.npz")
    if fmt == "png":
        return binary(render.sheet_png(d.outputs, names, count, scale), "image/png", headers, f"{stem}.png")
    for i, item in enumerate(d.items):
        item["outputs"] = render.item_json(d.outputs, i, names, arrays, scale)
    body = {"model": engine.name, "units": render.units(engine.manifest), "items": d.items}
    return json_reply(body, headers)
