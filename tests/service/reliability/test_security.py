"""Security against real uvicorns: the bearer token guards every product operation of the OpenAPI schema
(health, metadata and metrics stay open), no parameter is ever read as a path or fetched as a URL, CORS is
closed unless configured.

    .venv/bin/python -m pytest tests/service/reliability/test_security.py -q

Upload and pixel limits: the hostile corpus (body_too_large, image_too_large, too_many_images). The container's
non-root user: tests/deploy/test_dockerfiles.py::test_runs_as_a_numeric_non_root_user.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from service.app import create_app
from service.config import Settings

OPENAPI = create_app(Settings()).openapi()
OPERATIONS = sorted(
    (m.upper(), p, "401" in op.get("responses", {})) for p, ops in OPENAPI["paths"].items() for m, op in ops.items()
)
PRODUCT = [(m, p) for m, p, guarded in OPERATIONS if guarded]
OPEN = [(m, p) for m, p, guarded in OPERATIONS if not guarded]
TOKEN = "s3cret-t0ken"


def call(url: str, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, url + path.replace("{name}", "tiny-dae").replace("{version}", "1"), timeout=30, **kw)


def test_the_schema_splits_product_from_open_operations() -> None:
    assert {p for _, p in PRODUCT} == {
        "/encode",
        "/reconstruct",
        "/swap",
        "/decode",
        "/interpolate",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    }
    assert {"/v2/health/live", "/v2/health/ready", "/metrics", "/v2/models/{name}"} <= {p for _, p in OPEN}


def test_token_guards_every_product_operation(
    serve: Callable[..., Any], tiny: Callable[[str], Any], digit: bytes
) -> None:
    server = serve(tiny("dae").bundle, auth_token=TOKEN, log_level="warning")
    body: dict[str, Any] = {"content": digit, "headers": {"Content-Type": "image/png"}}
    for method, path in PRODUCT:
        for header, code in (
            (None, "auth_required"),
            ("Bearer wrong", "auth_invalid"),
            (f"Basic {TOKEN}", "auth_required"),
            (f"Bearer {TOKEN}x", "auth_invalid"),
            ("Bearer", "auth_required"),
            (f"bearer {TOKEN[:-1]}", "auth_invalid"),
        ):
            headers = {**body["headers"], **({"Authorization": header} if header else {})}
            r = call(server.url, method, path, content=body["content"], headers=headers)
            assert r.status_code == 401, (method, path, header, r.status_code)
            # the stable code: in the body (REST), in X-Error-Code (every error; the only place under /v2)
            assert r.headers["x-error-code"] == code and r.headers["www-authenticate"].startswith("Bearer")
        good = call(
            server.url,
            method,
            path,
            content=digit,
            headers={"Content-Type": "image/png", "Authorization": f"Bearer {TOKEN}"},
        )
        assert good.status_code != 401, (method, path)  # past auth (it may still be a 4xx for this body)
    r = call(
        server.url, "POST", "/encode", **{**body, "headers": {**body["headers"], "Authorization": f"Bearer {TOKEN}"}}
    )
    assert r.status_code == 200
    for method, path in OPEN:
        assert call(server.url, method, path).status_code == 200, (method, path)


class Canary(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Canary.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"CANARY-URL-CONTENT")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def canary() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Canary)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    Canary.hits = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}/secret.png"
    httpd.shutdown()
    httpd.server_close()


def test_no_parameter_is_read_as_a_path_or_fetched_as_a_url(rel_server: Any, canary: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_text("CANARY-FILE-CONTENT")
    values = [str(secret), f"file://{secret}", canary, "../../../../etc/passwd", "/etc/passwd"]
    answers = []
    for method, path, _ in OPERATIONS:
        params = [p["name"] for p in OPENAPI["paths"][path][method.lower()].get("parameters", []) if p["in"] == "query"]
        for v in values:
            target = path.replace("{name}", v.replace("/", "%2F"))
            answers.append(call(rel_server.url, method, target, params={p: v for p in params}))
            if method == "POST":
                answers.append(
                    call(
                        rel_server.url,
                        method,
                        path,
                        data={"images": v, "shape": v, "appearance": v, "url": v, "path": v},
                    )
                )
                answers.append(call(rel_server.url, method, path, json={"latents": [{"code": v}], "url": v}))
                answers.append(
                    call(rel_server.url, method, path, content=v.encode(), headers={"Content-Type": "image/png"})
                )
    assert Canary.hits == []
    assert all(r.status_code < 500 for r in answers)
    assert not any(b"CANARY-" in r.content for r in answers)
    assert sum(r.status_code == 200 for r in answers) < len(answers)  # the product calls were refused (4xx)


def test_cors_is_closed_unless_configured(
    rel_server: Any, serve: Callable[..., Any], tiny: Callable[[str], Any]
) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    r = httpx.options(f"{rel_server.url}/encode", headers=preflight)
    assert "access-control-allow-origin" not in r.headers and r.status_code in (404, 405)
    r = httpx.get(f"{rel_server.url}/v2/health/live", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    server = serve(tiny("dae").bundle, cors_origins="https://ok.example", log_level="warning")
    ok = httpx.options(f"{server.url}/encode", headers={**preflight, "Origin": "https://ok.example"})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://ok.example"
    evil = httpx.options(f"{server.url}/encode", headers=preflight)
    assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers
    plain = httpx.get(f"{server.url}/v2/health/live", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in plain.headers
