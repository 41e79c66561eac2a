"""The web page: ``GET /`` (service/static/index.html) and ``GET /static/{path}`` (its CSS, JS and samples).

    open http://127.0.0.1:8000/        # upload / draw / pick a digit, swap, interpolate (docs/client.md)

Plain files shipped inside the package: no build step, no CDN, so the page works offline. The page talks to the
public API only (/v2, /v2/models/{name}, /encode, /decode, /swap, /interpolate), so it needs no auth of its own;
with ``DAE_AUTH_TOKEN`` set, the page asks for the token and sends it as a bearer header.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from service.errors import NotFoundError

STATIC = (Path(__file__).resolve().parents[1] / "static").resolve()
# Explicit types: the platform's mimetypes table may lack (or mislabel) these, and browsers refuse a module
# script or a stylesheet served as text/plain.
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".md": "text/markdown; charset=utf-8",
}
# Short cache: the files change with the package version, and a stale page would talk to a newer API.
CACHE = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}

router = APIRouter(tags=["page"], include_in_schema=False)


def static_file(path: str) -> Path:
    """``path`` inside service/static, or 404 (never a file outside it: ``..``, absolute paths, links out)."""
    target = (STATIC / path).resolve()
    if not target.is_relative_to(STATIC) or not target.is_file():
        raise NotFoundError(f"no such file: /static/{path}", "not_found")
    return target


def serve(target: Path) -> Response:
    media = TYPES.get(target.suffix.lower()) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(target, media_type=media, headers=CACHE)


@router.api_route("/", methods=["GET", "HEAD"])
async def index() -> Response:
    """The page (static HTML; everything it shows comes from the API)."""
    return serve(static_file("index.html"))


@router.api_route("/static/{path:path}", methods=["GET", "HEAD"])
async def static(path: str) -> Response:
    return serve(static_file(path))
