"""Shared route plumbing: app state, auth, readiness gate, deadlines, image upload parsing, responses."""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import imaging, render
from service.config import Settings
from service.engine import Engine
from service.errors import (
    BadRequestError,
    NotReadyError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnprocessableError,
    UnsupportedMediaTypeError,
)
from service.metrics import Metrics

RAW_TYPES = tuple(imaging.MEDIA_TYPES)
FORMATS = ("json", "npz", "png")


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    engine: Engine | None = None
    ready: bool = False
    draining: bool = False
    reason: str | None = "loading the bundle"


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.dae
    return state


StateDep = Annotated[AppState, Depends(app_state)]


def check_auth(request: Request, state: StateDep) -> None:
    """Bearer-token auth for product endpoints when ``DAE_AUTH_TOKEN`` is set (health, metrics exempt)."""
    token = state.settings.auth_token
    if token is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="dae"'}
    if scheme.lower() != "bearer" or not given:
        state.metrics.rejections.labels("auth").inc()
        raise UnauthorizedError(
            "this endpoint needs 'Authorization: Bearer <token>'", "auth_required", headers=challenge
        )
    if not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        state.metrics.rejections.labels("auth").inc()
        raise UnauthorizedError("invalid bearer token", "auth_invalid", headers=challenge)


def ready_engine(state: StateDep) -> Engine:
    """The engine, or 503: product endpoints run only when ready and not draining."""
    if state.draining:
        state.metrics.rejections.labels("draining").inc()
        raise NotReadyError("the service is shutting down", "draining", headers={"Retry-After": "1"})
    if not state.ready or state.engine is None:
        state.metrics.rejections.labels("not_ready").inc()
        raise NotReadyError(
            f"the model is not ready ({state.reason})", "not_ready", headers={"Retry-After": "1"}
        )
    return state.engine


EngineDep = Annotated[Engine, Depends(ready_engine)]


def deadline(request: Request, state: AppState) -> float:
    """Absolute (monotonic) deadline of this request: arrival + ``DAE_DEADLINE_S``."""
    arrival = float(request.scope.get("state", {}).get("arrival", time.monotonic()))
    return arrival + state.settings.deadline_s


def check_format(fmt: str, allowed: tuple[str, ...] = FORMATS) -> str:
    fmt = fmt.lower()
    if fmt not in allowed:
        raise UnprocessableError(f"format must be one of {list(allowed)}, got {fmt!r}", "format_unsupported")
    return fmt


async def read_uploads(
    request: Request, settings: Settings, names: tuple[str, ...] | None = None
) -> list[tuple[str, bytes]]:
    """The request's images as (label, bytes): multipart files (any field name, or exactly ``names``), or one
    raw ``image/png|jpeg|webp|gif`` body. Too many → 413 ``too_many_images``; none → 400 ``no_images``."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    limit = settings.max_images_per_request
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=limit, max_fields=limit + 8)
        except StarletteHTTPException as e:
            if "too many files" in str(e.detail).lower():
                raise PayloadTooLargeError(
                    f"more than {limit} images in one request", "too_many_images"
                ) from e
            raise BadRequestError(f"malformed multipart body: {e.detail}", "multipart_invalid") from e
        try:
            files = [(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile)]
            if names is not None:
                by_name = {k: v for k, v in files}
                missing = [n for n in names if n not in by_name]
                if missing:
                    raise BadRequestError(
                        f"multipart body needs file fields {list(names)}; missing {missing}", "image_missing"
                    )
                files = [(n, by_name[n]) for n in names]
            if not files:
                raise BadRequestError("no image files in the multipart body", "no_images")
            return [(k if names else f"image {i} ({k})", await v.read()) for i, (k, v) in enumerate(files)]
        finally:
            await form.close()
    if ctype in RAW_TYPES:
        if names is not None and len(names) > 1:
            raise UnsupportedMediaTypeError(
                f"this endpoint needs multipart/form-data with files {list(names)}", "unsupported_media_type"
            )
        body = await request.body()
        if not body:
            raise BadRequestError("empty request body", "body_empty")
        return [(names[0] if names else "image 0", body)]
    raise UnsupportedMediaTypeError(
        f"content type {ctype or '(none)'} is not accepted: send multipart/form-data (image files) or a raw "
        f"body of type {', '.join(t for t in RAW_TYPES if t != 'image/jpg')}",
        "unsupported_media_type",
    )


async def decode_images(engine: Engine, uploads: list[tuple[str, bytes]]) -> np.ndarray:
    """Decode every upload in a worker thread (never on the event loop) → ``(B, C, N, N)`` float32."""
    if len(uploads) > engine.settings.max_images_per_request:
        raise PayloadTooLargeError(
            f"{len(uploads)} images exceed the limit of {engine.settings.max_images_per_request}",
            "too_many_images",
        )
    m = engine.manifest

    def work() -> np.ndarray:
        return np.stack(
            [
                imaging.decode_image(
                    data,
                    size=m.image_size,
                    color_mode=m.preprocessing.color_mode,
                    max_pixels=engine.settings.max_pixels,
                    what=label,
                )
                for label, data in uploads
            ]
        )

    return await asyncio.get_running_loop().run_in_executor(engine.decode_pool, work)


def binary(body: bytes, media_type: str, headers: dict[str, str], filename: str | None = None) -> Response:
    if filename:
        headers = {**headers, "Content-Disposition": f'inline; filename="{filename}"'}
    return Response(body, media_type=media_type, headers=headers)


def outputs_response(
    engine: Engine,
    fmt: str,
    outs: dict[str, np.ndarray],
    names: list[str],
    latents: dict[str, np.ndarray],
    items: list[dict[str, Any]],
    headers: dict[str, str],
    arrays: render.ArraysMode,
    stem: str,
) -> Response:
    """JSON / npz / PNG rendering shared by /reconstruct, /decode and /swap."""
    count = len(next(iter(outs.values())))
    scale = engine.settings.viz_scale
    if fmt == "npz":
        return binary(
            render.npz_bytes(render.npz_arrays(outs, names, latents)),
            render.NPZ_MEDIA_TYPE,
            headers,
            f"{stem}.npz",
        )
    if fmt == "png":
        return binary(render.sheet_png(outs, names, count, scale), "image/png", headers, f"{stem}.png")
    for i, item in enumerate(items):
        item["outputs"] = render.item_json(outs, i, names, arrays, scale)
    body = {"model": engine.name, "units": render.units(engine.manifest), "items": items}
    return JSONResponse(body, headers=headers)
