"""Shared helpers for the reliability tests (import as tests.service.reliability.helpers)."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

CORPUS = Path(__file__).resolve().parent / "corpus"


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition (labels matched exactly, in any order); 0 if absent."""
    want = sorted(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        m = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if m and sorted(filter(None, (m.group(1) or "").split(","))) == want:
            return float(m.group(2))
    return 0.0


def wait_until(predicate: object, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` passes; the last answer."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return bool(predicate())
        time.sleep(interval)


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
