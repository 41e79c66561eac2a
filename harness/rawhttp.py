"""The one raw-socket HTTP/1.1 client (asyncio streams): for misbehaving on purpose, and for overload.

Why not httpx: the fault tests need to do what no well-behaved client does (stop mid-upload, hang up before
reading the answer, send hostile bytes), and the stress bursts of hundreds of concurrent requests from a pooled
client on two shared cores would measure the client, not the server. ``request`` sends one request per
connection (``Connection: close``), so nothing is pooled; ``read_response`` reads one answer off a kept-alive
connection (``bench.loadgen``).

    reply = await request("127.0.0.1", 8000, build("POST", "/encode", body=png, content_type="image/png"))
    reply.status, reply.headers["retry-after"], reply.body, reply.seconds
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0


def build(
    method: str,
    path: str,
    *,
    body: bytes = b"",
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
    keep_alive: bool = False,
) -> bytes:
    """The raw bytes of one request (``Content-Length`` always set; ``Connection: close`` unless kept alive)."""
    connection = "keep-alive" if keep_alive else "close"
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Connection: {connection}",
        f"Content-Length: {len(body)}",
    ]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def multipart(files: list[tuple[str, str, bytes, str]], boundary: str = "dae-stress-boundary") -> tuple[bytes, str]:
    """(field, filename, data, content type) per file → (body, the multipart Content-Type header value)."""
    out = bytearray()
    for name, filename, data, ctype in files:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


async def request(host: str, port: int, raw: bytes, timeout: float = 30.0) -> Reply:
    """Send ``raw``, read the whole reply (until the server closes). Raises TimeoutError / OSError."""
    t0 = time.perf_counter()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(raw)
        await asyncio.wait_for(writer.drain(), timeout)
        data = await asyncio.wait_for(reader.read(-1), timeout)
    finally:
        writer.close()
        with contextlib.suppress(OSError):  # the peer may have reset the connection; the reply is what matters
            await writer.wait_closed()
    reply = parse(data)
    reply.seconds = time.perf_counter() - t0
    return reply


def _head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers of a response head (without the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return status, headers


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response off a kept-alive connection (Content-Length or chunked body); return its status."""
    status, headers = _head((await reader.readuntil(b"\r\n\r\n"))[:-4])
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


def parse(data: bytes) -> Reply:
    """A complete HTTP/1.1 response (Content-Length or read-to-close; chunked is decoded)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"incomplete HTTP response ({len(data)} bytes)")
    status, headers = _head(head)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    elif "content-length" in headers:
        n = int(headers["content-length"])
        if len(body) < n:
            raise ValueError(f"response body truncated: {len(body)} of {n} bytes")
        body = body[:n]
    return Reply(status, headers, body)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return bytes(out)
