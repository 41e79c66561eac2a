"""The checked-in hostile corpus (tests/service/reliability/corpus/manifest.json) against a real uvicorn: every case
gets exactly its expected status and error code, never a 500, a hang or a crash, and the server is still
ready after each one.

    .venv/bin/python -m pytest tests/service/reliability/test_hostile_corpus.py -q
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from harness.rawhttp import build, request
from tests.service.reliability.helpers import CORPUS, ready

MANIFEST = json.loads((CORPUS / "manifest.json").read_text())["cases"]
HEADER = 6  # version byte, 4 bytes of the model's sha256, dtype byte (docs/service.md, "Latent codes")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _sealed(body: bytes) -> str:
    return _b64(body + struct.pack("<I", zlib.crc32(body)))


def derived_codes(code: str) -> dict[str, str]:
    """Codes built from a real one by the documented layout: each wrong in exactly one way."""
    raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
    body = raw[:-4]
    assert _sealed(body) == code, "the documented code layout changed"
    nan = struct.pack("<f", float("nan"))
    return {
        "$CODE_TRUNCATED": _b64(raw[:-5]),
        "$CODE_FOREIGN": _sealed(body[:1] + b"\xde\xad\xbe\xef" + body[5:]),
        "$CODE_WRONG_LENGTH": _sealed(body[:-4]),
        "$CODE_NAN": _sealed(body[:HEADER] + nan + body[HEADER + 4 :]),
        "$CODE": code,
    }


def fill(value: Any, codes: dict[str, str]) -> Any:
    if isinstance(value, dict) and set(value) == {"repeat", "times"}:
        return str(value["repeat"]) * int(value["times"])
    if isinstance(value, str):
        for k, v in codes.items():  # longest names first ($CODE is a prefix of the others)
            value = value.replace(k, v)
        return value
    return value


def send(url: str, req: dict[str, Any], codes: dict[str, str]) -> httpx.Response:
    kwargs: dict[str, Any] = {"params": {k: fill(v, codes) for k, v in req.get("query", {}).items()}}
    data = (CORPUS / req["file"]).read_bytes() if "file" in req else b""
    pad = int(req.get("pad_bytes", 0))
    if req.get("as") == "raw":
        body = data + b"\0" * pad
        if req.get("chunked"):

            def chunks() -> Iterator[bytes]:
                for i in range(0, len(body), 65536):
                    yield body[i : i + 65536]

            kwargs["content"] = chunks()
        else:
            kwargs["content"] = body
        kwargs["headers"] = {"Content-Type": req["content_type"]}
    elif req.get("as") == "multipart":
        files = [
            (f, (f"{i}-{req['file']}", data, req["content_type"])) for f in req["fields"] for i in range(req["repeat"])
        ]
        if pad:
            files.append(("padding", ("pad.bin", b"\0" * pad, "application/octet-stream")))
        kwargs["files"] = files
    elif "json_text" in req:
        kwargs["content"] = fill(req["json_text"], codes).encode()
        kwargs["headers"] = {"Content-Type": "application/json"}
    query = urlencode(kwargs.pop("params"))
    if len(query) < 60_000:
        return httpx.request(req["method"], f"{url}{req['path']}?{query}", timeout=30, **kwargs)
    # httpx refuses URLs this long on the client side; send the same request with the raw client instead
    built = httpx.Request(req["method"], url + req["path"], **kwargs)
    port = int(url.rsplit(":", 1)[1])
    headers = {k: v for k, v in built.headers.items() if k.lower() not in ("host", "content-length", "connection")}
    raw = build(req["method"], f"{req['path']}?{query}", body=built.read(), headers=headers)
    reply = asyncio.run(request("127.0.0.1", port, raw, 30))
    return httpx.Response(reply.status, headers=reply.headers, content=reply.body)


@pytest.fixture(scope="module")
def codes(rel_code: str) -> dict[str, str]:
    return derived_codes(rel_code)


@pytest.mark.parametrize("case", MANIFEST, ids=[c["name"] for c in MANIFEST])
def test_hostile_input_gets_its_documented_answer(rel_server: Any, codes: dict[str, str], case: dict[str, Any]) -> None:
    r = send(rel_server.url, case["request"], codes)
    assert r.status_code == case["status"], (r.status_code, r.text[:300])
    if case["code"] is None:
        items = r.json()["items"]
        assert items and all(len(i["code"]) > 20 for i in items)
    else:
        err = r.json()["error"]
        assert err["code"] == case["code"], err
        assert err["message"] and err["request_id"] == r.headers["x-request-id"]
    assert rel_server.proc.poll() is None, rel_server.logs()[-2000:]
    assert ready(rel_server.url)


def test_the_corpus_and_its_manifest_agree() -> None:
    used = {c["request"]["file"] for c in MANIFEST if "file" in c["request"]}
    on_disk = {p.name for p in CORPUS.iterdir() if p.is_file()} - {"manifest.json", "make_corpus.py", "README.md"}
    assert used == on_disk
    assert len({c["name"] for c in MANIFEST}) == len(MANIFEST)
    assert (CORPUS / "bomb.png").stat().st_size < 100_000  # tiny file, huge declared size
    assert all(c["status"] < 500 for c in MANIFEST)
