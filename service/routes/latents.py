"""Product endpoints that take latents: POST /decode and GET /interpolate.

    curl -H 'Content-Type: application/json' -d '{"latents": [{"code": "'$CODE'"}]}' \
        http://127.0.0.1:8000/decode
    curl "http://127.0.0.1:8000/interpolate?start=$A&end=$B&steps=8&factor=shape&format=gif" -o morph.gif

The maths (linear interpolation in float64, what ``factor`` moves) lives in ``service/usecases.py``; these
handlers translate HTTP to it and back. Interpolations are cacheable: a strong ETag, ``If-None-Match`` → 304.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from bundle.layout import Arrays
from service import render
from service.errors import UnprocessableError
from service.http import Call, Endpoint, Param, Reply
from service.routes.outputs import ARRAYS, ERRORS, FORMAT, OUTPUT_RESPONSES, OUTPUTS, binary, defaults, outputs_reply
from service.schemas import DecodeRequest, LatentInput, OutputsResponse
from service.usecases import UseCases


def validation_error(e: ValidationError, where: str) -> UnprocessableError:
    # FastAPI's layout: location, message, type; never the input (it can echo a large body back).
    details = [{"loc": [where, *e_["loc"]], "msg": e_["msg"], "type": e_["type"]} for e_ in e.errors()]
    first = details[0] if details else {"loc": [where], "msg": "invalid request"}
    text = ".".join(str(p) for p in first["loc"])
    return UnprocessableError(f"invalid request: {text}: {first['msg']}", "validation_error", details=details)


async def decode(call: Call) -> Reply:
    """Latents (codes from /encode or explicit values) → texture, deformation, reconstruction, pictures."""
    cases, engine = call.cases, call.cases.engine
    fmt, arrays = call.param(FORMAT), call.param(ARRAYS)
    names = render.parse_outputs(call.param(OUTPUTS), engine.manifest, defaults(fmt))
    try:
        body = DecodeRequest.model_validate_json(await call.body())
    except ValidationError as e:
        raise validation_error(e, "body") from None
    out = await cases.decode(body.latents, call.deadline)
    return outputs_reply(engine, fmt, out, names, arrays, "decode")


def floats(text: str | None, field: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise UnprocessableError(f"{field}: comma-separated numbers expected", "latent_malformed") from e


LATENT = "a latent code from /encode"
VALUES = "explicit latent values, comma-separated"
START, END = Param("start", LATENT), Param("end", LATENT)
STEPS = Param("steps", default=8, integer=True)
FACTOR = Param("factor", choices=("shape", "appearance", "both"), default="both")
FRAMES = Param("format", choices=("json", "png", "gif", "npz"), default="json")
ENDS = {
    which: (
        Param(f"{which}_shape", VALUES),
        Param(f"{which}_appearance", VALUES),
        Param(f"{which}_shading", VALUES),
        Param(f"{which}_class"),
    )
    for which in ("start", "end")
}


def end_latents(call: Call, cases: UseCases, which: str, code: str | None) -> Arrays:
    """One end of an interpolation from the query: ``start=CODE`` or ``start_shape=...&start_appearance=...``."""
    shape, appearance, shading, klass = (call.param(p) for p in ENDS[which])
    if code is None and shape is None and appearance is None:
        raise UnprocessableError(
            f"{which}: give a code ({which}=...) or explicit values ({which}_shape=..., {which}_appearance=...)",
            "latent_missing",
        )
    try:
        lat = LatentInput.model_validate(
            {
                "code": code,
                "shape": floats(shape, f"{which}_shape"),
                "appearance": floats(appearance, f"{which}_appearance"),
                "shading": floats(shading, f"{which}_shading"),
                "class": klass,
            }
        )
    except ValidationError as e:
        raise validation_error(e, "query") from None
    return cases.resolve(lat, which)


async def interpolate(call: Call) -> Reply:
    """Frames between two latent pairs, moving shape, appearance or both; one decoder batch. Cacheable."""
    cases, engine = call.cases, call.cases.engine
    steps, factor, fmt = call.param(STEPS), call.param(FACTOR), call.param(FRAMES)
    arrays = call.param(ARRAYS)
    cases.check_steps(steps)
    default = defaults("json") if fmt in ("json", "npz") else ["texture", "reconstruction", "warped_grid"]
    names = render.parse_outputs(call.param(OUTPUTS), engine.manifest, default)
    a = end_latents(call, cases, "start", call.param(START))
    b = end_latents(call, cases, "end", call.param(END))
    etag = cases.etag(call.query)
    cache = {"ETag": etag, "Cache-Control": "public, max-age=3600"}
    if etag in [t.strip() for t in call.headers.get("if-none-match", "").split(",")]:
        return Reply(b"", "", 304, cache)
    out = await cases.interpolate(a, b, steps, factor, call.deadline)
    out.headers.update(cache)
    headers = {"Server-Timing": out.timing, **cache}
    scale = engine.settings.viz_scale
    if fmt == "gif":
        return binary(render.gif(out.outputs, names, steps, scale), "image/gif", headers, "interpolation.gif")
    if fmt == "png":
        sheet = render.sheet_png(out.outputs, names, steps, scale, by_row=False)
        return binary(sheet, "image/png", headers, "interpolation.png")
    return outputs_reply(engine, fmt, out, names, arrays, "interpolation")


async def _decode_doc(body: DecodeRequest) -> None:  # schema-only: documents the JSON body
    """never called: the middleware serves this path"""


async def _doc() -> None:
    """never called: the middleware serves this path"""


INTERPOLATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **OUTPUT_RESPONSES,
    200: {
        "model": OutputsResponse,
        "description": "JSON frames, a PNG strip (row per output), a GIF animation, or npz",
        "content": {"image/png": {}, "image/gif": {}, render.NPZ_MEDIA_TYPE: {}},
    },
    304: {"description": "not modified"},
    **ERRORS,
}
ENDPOINTS = (
    Endpoint(
        "POST",
        "/decode",
        decode,
        _decode_doc,
        params=(OUTPUTS, FORMAT, ARRAYS),
        tags=("latents",),
        responses=OUTPUT_RESPONSES,
    ),
    Endpoint(
        "GET",
        "/interpolate",
        interpolate,
        _doc,
        params=(START, END, STEPS, FACTOR, FRAMES, OUTPUTS, ARRAYS, *ENDS["start"], *ENDS["end"]),
        tags=("latents",),
        responses=INTERPOLATE_RESPONSES,
    ),
)
