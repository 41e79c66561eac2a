"""Regenerate the hostile-input corpus (files + manifest.json) in this folder; deterministic, run rarely:

    .venv/bin/python tests/service/reliability/corpus/make_corpus.py

manifest.json lists every case: the request to send (method, path, content type, which file and how, query,
JSON body), the expected status and the expected error code. Files live here; inputs that would be large on
disk (an over-limit body, hundreds of files, a 100 kB query) are described instead and built by the test.
Placeholders the test fills from the running server: ``$CODE`` (a real code of this model) and the codes built
from it, ``$CODE_TRUNCATED``, ``$CODE_FOREIGN``, ``$CODE_WRONG_LENGTH``, ``$CODE_NAN``.
The limits these expectations assume are tests/service/reliability/conftest.py's ``LIMITS``.
"""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
RNG = np.random.default_rng(7)


def save(im: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def digit() -> Image.Image:
    a = np.zeros((28, 28), np.uint8)
    a[6:22, 12:16] = 255  # a "1"
    return Image.fromarray(a)


def png_bomb() -> bytes:
    """A 1-bit 20000 x 20000 PNG (400 M pixels) that compresses to a few tens of kB."""
    w = h = 20000
    raw = zlib.compress((b"\0" + b"\0" * (w // 8)) * h, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def jpeg_bomb() -> bytes:
    """A small JPEG whose frame header (SOF0) declares 65000 x 65000 pixels."""
    data = bytearray(save(digit(), "JPEG"))
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = (65000).to_bytes(2, "big") + (65000).to_bytes(2, "big")
    return bytes(data)


def files() -> dict[str, bytes]:
    d = digit()
    rgb = Image.fromarray(RNG.integers(0, 256, (28, 28, 3), dtype=np.uint8))
    frames = [Image.fromarray(RNG.integers(0, 256, (28, 28), dtype=np.uint8)) for _ in range(3)]
    png = save(d, "PNG")
    jpg = save(rgb, "JPEG", quality=90)
    return {
        "zero_bytes.png": b"",
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpg[: len(jpg) // 2],
        "text.txt": b"this is a text file, not an image\n" * 4,
        "bomb.png": png_bomb(),
        "bomb.jpg": jpeg_bomb(),
        "gray16.png": save(Image.fromarray(RNG.integers(0, 65535, (28, 28), dtype=np.uint16)), "PNG"),
        "palette.png": save(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "cmyk.jpg": save(rgb.convert("CMYK"), "JPEG"),
        "alpha.png": save(Image.fromarray(RNG.integers(0, 256, (28, 28, 4), dtype=np.uint8)), "PNG"),
        "animated.gif": save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0),
        "animated.webp": save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50),
        "digit.png": png,
    }


def raw(file: str, ctype: str = "image/png", path: str = "/encode") -> dict[str, Any]:
    return {"method": "POST", "path": path, "content_type": ctype, "file": file, "as": "raw"}


def form(
    file: str, fields: tuple[str, ...] = ("images",), path: str = "/encode", repeat: int = 1, ctype: str = "image/png"
) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": path,
        "file": file,
        "as": "multipart",
        "fields": list(fields),
        "repeat": repeat,
        "content_type": ctype,
    }


def decode(latents: Any) -> dict[str, Any]:
    return {"method": "POST", "path": "/decode", "json_text": json.dumps({"latents": latents}, allow_nan=True)}


def interp(**query: Any) -> dict[str, Any]:
    return {"method": "GET", "path": "/interpolate", "query": {"start": "$CODE", "end": "$CODE", **query}}


S8, A4 = [0.5] * 8, [0.5] * 4
CASES: list[tuple[str, dict[str, Any], int, str | None]] = [
    ("zero bytes, raw", raw("zero_bytes.png"), 400, "body_empty"),
    ("zero bytes, multipart", form("zero_bytes.png"), 400, "image_empty"),
    ("truncated PNG", raw("truncated.png"), 400, "image_truncated"),
    ("truncated JPEG", raw("truncated.jpg", "image/jpeg"), 400, "image_truncated"),
    ("text sent as image/png", raw("text.txt"), 400, "image_undecodable"),
    ("text sent as image/png in multipart", form("text.txt"), 400, "image_undecodable"),
    ("PNG decompression bomb (400 M pixels declared)", raw("bomb.png"), 413, "image_too_large"),
    ("JPEG declaring 65000x65000", raw("bomb.jpg", "image/jpeg"), 413, "image_too_large"),
    ("16-bit gray PNG", raw("gray16.png"), 200, None),
    ("palette PNG", raw("palette.png"), 200, None),
    ("CMYK JPEG", raw("cmyk.jpg", "image/jpeg"), 200, None),
    ("RGBA PNG", raw("alpha.png"), 200, None),
    ("animated GIF", raw("animated.gif", "image/gif"), 200, None),
    ("animated WebP", raw("animated.webp", "image/webp"), 200, None),
    ("PNG declared as JPEG (the bytes decide)", raw("digit.png", "image/jpeg"), 200, None),
    (
        "enormous multipart body (2 MB > 1 MB limit)",
        {**form("digit.png"), "pad_bytes": 2_000_000},
        413,
        "body_too_large",
    ),
    (
        "enormous raw body, chunked (no Content-Length)",
        {**raw("digit.png"), "pad_bytes": 2_000_000, "chunked": True},
        413,
        "body_too_large",
    ),
    ("300 files in one request", form("digit.png", repeat=300), 413, "too_many_images"),
    ("swap with wrong field names", form("digit.png", ("shap", "appearence"), "/swap"), 400, "image_missing"),
    ("encode accepts any field name", form("digit.png", ("picture",)), 200, None),
    ("swap with one field missing", form("digit.png", ("shape",), "/swap"), 400, "image_missing"),
    ("malformed code", decode([{"code": "!!not base64!!"}]), 400, "code_malformed"),
    ("truncated code", decode([{"code": "$CODE_TRUNCATED"}]), 400, "code_checksum"),
    ("code from another model", decode([{"code": "$CODE_FOREIGN"}]), 422, "code_foreign_model"),
    ("code of the wrong length", decode([{"code": "$CODE_WRONG_LENGTH"}]), 400, "code_malformed"),
    ("code holding NaN", decode([{"code": "$CODE_NAN"}]), 422, "latent_not_finite"),
    (
        "NaN in explicit latents",
        decode([{"shape": [float("nan"), *S8[1:]], "appearance": A4, "class": 1}]),
        422,
        "latent_not_finite",
    ),
    (
        "Infinity in explicit latents",
        decode([{"shape": S8, "appearance": [float("inf")] * 4, "class": 1}]),
        422,
        "latent_not_finite",
    ),
    (
        "latent of the wrong length",
        decode([{"shape": S8 * 2, "appearance": A4, "class": 1}]),
        422,
        "latent_wrong_length",
    ),
    (
        "latents of the wrong type",
        decode([{"shape": ["a"] * 8, "appearance": A4, "class": 1}]),
        422,
        "validation_error",
    ),
    ("hundreds of latents", decode([{"code": "$CODE"}] * 300), 413, "too_many_latents"),
    (
        "NaN in interpolation values",
        interp(start=None, start_shape="nan," * 7 + "nan", start_appearance="0,0,0,0", start_class="1"),
        422,
        "latent_not_finite",
    ),
    ("interpolation from a foreign code", interp(start="$CODE_FOREIGN"), 422, "code_foreign_model"),
    ("steps = 0", interp(steps=0), 422, "steps_out_of_range"),
    ("steps = -5", interp(steps=-5), 422, "steps_out_of_range"),
    ("steps = 10^9", interp(steps=10**9), 422, "steps_out_of_range"),
    ("steps = 10^30 (beyond int64)", interp(steps=10**30), 422, "steps_out_of_range"),
    ("100 kB query string (code)", interp(start={"repeat": "A", "times": 100_000}), 400, "code_malformed"),
    (
        "100 kB query string (outputs)",
        {**form("digit.png", path="/reconstruct"), "query": {"outputs": {"repeat": "x,", "times": 25_000}}},
        422,
        "output_unavailable",
    ),
    (
        "100 kB of explicit values",
        interp(
            start=None, start_shape={"repeat": "0.5,", "times": 16_000}, start_appearance="0,0,0,0", start_class="1"
        ),
        422,
        "latent_wrong_length",
    ),
]


def main() -> None:
    for name, data in files().items():
        (HERE / name).write_bytes(data)
    cases = []
    for name, req, status, code in CASES:
        if "query" in req:
            req["query"] = {k: v for k, v in req["query"].items() if v is not None}
        cases.append({"name": name, "request": req, "status": status, "code": code})
    (HERE / "manifest.json").write_text(json.dumps({"cases": cases}, indent=1) + "\n")
    print(f"{len(cases)} cases, {len(files())} files in {HERE}")


if __name__ == "__main__":
    main()
