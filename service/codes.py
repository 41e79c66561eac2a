"""Compact, URL-safe latent codes: what /encode returns and what /interpolate, /decode accept back.

Layout (little-endian), then base64url without padding::

    version  u8      = 1
    model    4 bytes = first 4 bytes of the model's sha256 (a code from another model is refused)
    dtype    u8      = 1 float32 | 2 float16
    values   shape (S) + appearance (A) [+ shading_latent (L)] [+ class_code (K)]   (sizes from the manifest)
    crc32    u32     over everything before it

float32 codes are exact: decoding a code gives back the encoder's float32 latents bit for bit.
Errors: code_malformed (not base64url / wrong length), code_version, code_checksum (400);
code_foreign_model, latent_not_finite (422).
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import BadRequestError, UnprocessableError

VERSION = 1
_DTYPES: dict[int, np.dtype[Any]] = {1: np.dtype("<f4"), 2: np.dtype("<f2")}
_DTYPE_IDS = {"float32": 1, "float16": 2}
_HEADER = struct.Struct("<B4sB")
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class CodeLayout:
    """The ordered parts of a code for one model: (name, size) pairs, and the model id prefix."""

    model_id: bytes  # 4 bytes
    parts: tuple[tuple[str, int], ...]

    @classmethod
    def for_model(cls, sha256_hex: str, parts: list[tuple[str, int]]) -> CodeLayout:
        return cls(bytes.fromhex(sha256_hex[:8]), tuple((n, s) for n, s in parts if s > 0))

    @property
    def length(self) -> int:
        return sum(s for _, s in self.parts)


def encode_code(layout: CodeLayout, values: dict[str, np.ndarray], dtype: str = "float32") -> str:
    """One item's latents (1-D arrays by part name) → URL-safe code."""
    return encode_codes(layout, {k: np.asarray(v)[None] for k, v in values.items()}, dtype)[0]


def encode_codes(layout: CodeLayout, rows: dict[str, np.ndarray], dtype: str = "float32") -> list[str]:
    """A batch's latents (``(B, D)`` arrays by part name) → one URL-safe code per row (one concatenation and
    one conversion for the whole batch: per row only the bytes, the checksum and base64)."""
    dt_id = _DTYPE_IDS[dtype]
    parts = [np.asarray(rows[name], dtype=np.float32) for name, _ in layout.parts]
    flat = np.concatenate(
        [p.reshape(len(p), -1)[:, :size] for p, (_, size) in zip(parts, layout.parts, strict=True)], axis=1
    ).astype(_DTYPES[dt_id])
    head = _HEADER.pack(VERSION, layout.model_id, dt_id)
    out = []
    for row in flat:
        body = head + row.tobytes()
        out.append(base64.urlsafe_b64encode(body + _CRC.pack(zlib.crc32(body))).rstrip(b"=").decode("ascii"))
    return out


def decode_code(layout: CodeLayout, code: str, *, field: str = "code") -> dict[str, np.ndarray]:
    """URL-safe code → float32 1-D arrays by part name; raises a 4xx ServiceError naming what is wrong."""
    if not code or len(code) > 65536:
        raise BadRequestError(f"{field}: empty or oversized latent code", "code_malformed")
    try:
        raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
    except (binascii.Error, ValueError) as e:
        raise BadRequestError(f"{field}: not a base64url latent code ({e})", "code_malformed") from e
    if len(raw) < _HEADER.size + _CRC.size:
        raise BadRequestError(f"{field}: latent code too short ({len(raw)} bytes)", "code_malformed")
    body, (crc,) = raw[: -_CRC.size], _CRC.unpack(raw[-_CRC.size :])
    version, model_id, dt_id = _HEADER.unpack(body[: _HEADER.size])
    if version != VERSION:
        raise BadRequestError(
            f"{field}: latent code version {version}, this service reads version {VERSION}", "code_version"
        )
    if zlib.crc32(body) != crc:
        raise BadRequestError(f"{field}: latent code checksum mismatch (truncated or altered)", "code_checksum")
    if model_id != layout.model_id:
        raise UnprocessableError(
            f"{field}: latent code is from another model ({model_id.hex()}), this service runs {layout.model_id.hex()}",
            "code_foreign_model",
        )
    if dt_id not in _DTYPES:
        raise BadRequestError(f"{field}: unknown value type {dt_id} in latent code", "code_malformed")
    dt = _DTYPES[dt_id]
    payload = body[_HEADER.size :]
    if len(payload) != layout.length * dt.itemsize:
        raise BadRequestError(
            f"{field}: latent code holds {len(payload) // dt.itemsize} values, need {layout.length}",
            "code_malformed",
        )
    flat = np.frombuffer(payload, dtype=dt).astype(np.float32)
    if not np.isfinite(flat).all():
        raise UnprocessableError(f"{field}: latent code contains non-finite values", "latent_not_finite")
    out: dict[str, np.ndarray] = {}
    at = 0
    for name, size in layout.parts:
        out[name] = flat[at : at + size].copy()
        at += size
    return out
