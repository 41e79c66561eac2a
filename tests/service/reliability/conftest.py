"""Reliability fixtures: one real uvicorn serving the tiny class-aware bundle with small limits, shared by the
corpus, fuzzing and security tests of this folder (the overload and fault tests start their own)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

# Small limits so that the limit cases stay small on the wire (documented in corpus/README.md next to this file).
LIMITS = dict(
    max_body_bytes=1_000_000,
    max_pixels=1_000_000,
    max_images_per_request=8,
    max_steps=16,
    queue_size=64,
    log_level="warning",
)


@pytest.fixture(scope="session")
def rel_server(serve: Callable[..., Any], tiny: Callable[[str], Any]) -> Any:
    return serve(tiny("class-aware").bundle, **LIMITS)


@pytest.fixture(scope="session")
def rel_code(rel_server: Any, digit: bytes) -> str:
    r = httpx.post(f"{rel_server.url}/encode", content=digit, headers={"Content-Type": "image/png"}, timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["items"][0]["code"])
