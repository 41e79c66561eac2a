"""The page's files as the service serves them (no browser needed): types, offline, samples, no escapes."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

STATIC = Path(__file__).resolve().parents[3] / "service" / "static"


def test_index_and_its_assets_are_served_with_their_types(page_server: Any) -> None:
    r = httpx.get(page_server.url + "/", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.text == (STATIC / "index.html").read_text()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', r.text)
    assert sorted(assets) == ["/static/app.js", "/static/page.css"]
    types = {"/static/app.js": "text/javascript", "/static/page.css": "text/css"}
    for path in assets:
        a = httpx.get(page_server.url + path, timeout=10)
        assert a.status_code == 200 and a.headers["content-type"].startswith(types[path])
        assert a.headers["x-content-type-options"] == "nosniff"
    assert httpx.head(page_server.url + "/", timeout=10).status_code == 200


def test_the_page_needs_nothing_from_outside(page_server: Any) -> None:
    for name in ("index.html", "app.js", "page.css"):
        text = httpx.get(f"{page_server.url}/static/{name}", timeout=10).text
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), f"{name} refers off-site"
        assert "@import" not in text


def test_samples_are_real_mnist_digits_with_attribution(page_server: Any) -> None:
    listing = httpx.get(page_server.url + "/static/samples/samples.json", timeout=10).json()
    labels = sorted(item["label"] for item in listing["items"])
    assert labels == [str(i) for i in range(10)]
    total = 0
    for item in listing["items"]:
        r = httpx.get(f"{page_server.url}/static/samples/{item['file']}", timeout=10)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(r.content)) as img:
            assert (img.size, img.mode) == ((28, 28), "L")
        total += len(r.content)
    assert total < 10_000  # a few KB shipped with the package
    readme = (STATIC / "samples" / "README.md").read_text()
    assert "CC BY-SA 3.0" in readme and "LeCun" in readme
    assert json.loads((STATIC / "samples" / "samples.json").read_text()) == listing


@pytest.mark.parametrize(
    "path",
    [
        "/static/../routes/page.py",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
        "/static/nope.js",
        "/static/samples",
        "/static//etc/passwd",
    ],
)
def test_nothing_outside_static_is_served(page_server: Any, path: str) -> None:
    r = httpx.get(page_server.url + path, timeout=10)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
