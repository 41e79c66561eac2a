"""A client that hangs up in the middle of its upload is a quiet info line and dae_client_disconnects_total
(a 499 in the request metrics, as nginx counts it), never a traceback: against a real uvicorn, raw sockets."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx


def test_hangups_mid_body_are_counted_not_tracebacks(
    serve: Callable[..., Any], tiny: Callable[[str], Any], digit: bytes
) -> None:
    server = serve(tiny("dae").bundle)
    host, port = server.url.rsplit("//", 1)[1].split(":")
    boundary = "b0undary"
    for path, ctype, part in (
        ("/encode", "image/png", digit[:100]),  # raw body: a third of the PNG, then gone
        (
            "/reconstruct",
            f"multipart/form-data; boundary={boundary}",
            f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n'.encode(),
        ),
    ):
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: 100000\r\n\r\n"
        for _ in range(3):
            with socket.create_connection((host, int(port)), timeout=10) as s:
                s.sendall(head.encode() + part)
    want = [
        'dae_client_disconnects_total{endpoint="/encode"} 3.0',
        'dae_client_disconnects_total{endpoint="/reconstruct"} 3.0',
    ]
    deadline, text = time.monotonic() + 10, ""
    while time.monotonic() < deadline and not all(w in text for w in want):
        time.sleep(0.1)
        text = httpx.get(f"{server.url}/metrics").text
    assert all(w in text for w in want), text
    assert 'endpoint="/encode",method="POST",status="499"' in text
    logs = server.logs()
    assert "Traceback" not in logs and "unhandled error" not in logs and "Exception in ASGI" not in logs
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    quiet = [r for r in lines if r["message"] == "client disconnected"]
    assert len(quiet) == 6 and all(r["level"] == "info" and r["request_id"] for r in quiet)
    assert httpx.post(f"{server.url}/encode", content=digit, headers={"Content-Type": "image/png"}).status_code == 200
