"""The minimal server a user could write in ten minutes: FastAPI + onnxruntime, async routes, Pillow,
``session.run`` inline on the event loop, no batching, no limits.

    DAE_BUNDLE=models/mnist uvicorn bench.peers.minimal:app --port 8101 --no-access-log
"""

from __future__ import annotations

import os

from fastapi import FastAPI, Request, Response

from bench.peers.model import PeerModel

model = PeerModel(os.environ.get("DAE_BUNDLE", "models/mnist"))
app = FastAPI()


@app.post("/encode")
async def encode(request: Request) -> dict[str, object]:
    latents = model.encode(model.image(await request.body())[None])
    return {"model": "minimal", "items": model.encode_items(latents)}


@app.post("/reconstruct")
async def reconstruct(request: Request) -> Response:
    latents = model.encode(model.image(await request.body())[None])
    return Response(model.reconstruct_npz(latents, model.decode(latents)), media_type="application/x-npz")
