"""The HTTP floor: an ASGI app that reads the request body and answers a fixed ~1.6 kB JSON.

    uvicorn bench.peers.floor:app --loop asyncio --http h11 --port 8100 --no-access-log

Plain uvicorn (asyncio loop, h11 parser), no framework: what one Python process on this HTTP stack can do at
best, so ``service req/s ÷ floor req/s`` says how much of the request the service spends on itself.
"""

from __future__ import annotations

import json
from typing import Any

# About the size of an /encode answer for one 32-pixel MNIST digit (144 latent floats, 10 probabilities, a code).
_ITEM = {"index": 0, "values": [round(i * 0.001, 6) for i in range(150)], "pad": ""}
_ITEM["pad"] = "x" * (1600 - len(json.dumps({"model": "floor", "items": [_ITEM]}, separators=(",", ":"))))
BODY = json.dumps({"model": "floor", "items": [_ITEM]}, separators=(",", ":")).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":  # lifespan: nothing to set up
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        if message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
