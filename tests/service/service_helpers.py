"""Shared helpers for the service tests (imported by file name: tests/service is on sys.path)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def digit_png(digits: tuple[np.ndarray, np.ndarray], i: int) -> bytes:
    return png(digits[0][i])


def files(*blobs: bytes, field: str = "images") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [(field, (f"{i}.png", b, "image/png")) for i, b in enumerate(blobs)]


def npz(content: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(content)) as z:
        return {k: z[k] for k in z.files}


def assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    """The one error shape: status, stable code, a message, and the response's request id."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert err["code"] == code, err
    assert err["message"]
    assert err["request_id"] and err["request_id"] == r.headers["x-request-id"]
    return dict(err)
