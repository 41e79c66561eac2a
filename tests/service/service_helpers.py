"""Shared helpers for the service tests (imported by file name: tests/service is on sys.path)."""

from __future__ import annotations

import io
import socket
import time
from typing import Any
from urllib.parse import urlsplit

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


def refused_before_body(url: str) -> tuple[float, bytes]:
    """POST /encode headers announcing a body that never comes: only an answer given before reading the body can
    arrive. Returns the seconds until the whole error answer (status line, headers, JSON) came, and its bytes."""
    host = urlsplit(url)
    with socket.create_connection((host.hostname, host.port), timeout=5) as sock:
        t0 = time.monotonic()
        sock.sendall(b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 50000\r\n\r\n")
        raw = b""
        while b'"}}' not in raw and time.monotonic() - t0 < 5:
            raw += sock.recv(65536)
        return time.monotonic() - t0, raw
