"""The same bundle served by LitServe (PyPI ``litserve``), batching on (max 32 images, 1 ms), one worker per
endpoint. Runs in its own virtualenv (``bench/http_bench.py`` makes ``build/peers-venv``):

    DAE_BUNDLE=models/mnist build/peers-venv/bin/python -m bench.peers.lit --port 8102

LitServe parses every non-form body as JSON; accepting a raw ``image/png`` body takes two private methods
overridden (``RegularRequestHandler._prepare_request`` and ``LitServer._register_api_endpoints``), as its
issue #732 describes.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import litserve as ls
import numpy as np
from fastapi import Depends, Request, Response
from litserve.server import RegularRequestHandler

from bench.peers.model import PeerModel

BUNDLE = os.environ.get("DAE_BUNDLE", "models/mnist")


class RawBody(RegularRequestHandler):
    async def _prepare_request(self, request: Request, request_type: Any) -> Any:
        return await request.body()  # bytes cross LitServe's worker queue as they are


class RawServer(ls.LitServer):
    def _register_api_endpoints(self, lit_api: ls.LitAPI, request_type: Any, response_type: Any) -> None:
        handler = RawBody(lit_api, self)

        async def endpoint_handler(request: Request) -> Any:
            return await handler.handle_request(request, Request)

        self.app.add_api_route(
            lit_api.api_path, endpoint_handler, methods=["POST"], dependencies=[Depends(self.setup_auth(lit_api))]
        )


class Encode(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.model = PeerModel(BUNDLE)

    def decode_request(self, request: bytes) -> np.ndarray:
        return self.model.image(request)

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.stack(inputs)

    def predict(self, x: np.ndarray) -> Any:
        latents = self.model.encode(x)
        return [{k: v[i : i + 1] for k, v in latents.items()} for i in range(len(x))]

    def unbatch(self, output: Any) -> Any:
        return output

    def encode_response(self, output: Any) -> dict[str, Any] | Response:
        return {"model": "litserve", "items": self.model.encode_items(output)}


class Reconstruct(Encode):
    def predict(self, x: np.ndarray) -> Any:
        latents = self.model.encode(x)
        outs = self.model.decode(latents)
        return [
            ({k: v[i : i + 1] for k, v in latents.items()}, {k: v[i : i + 1] for k, v in outs.items()})
            for i in range(len(x))
        ]

    def encode_response(self, output: Any) -> Response:
        latents, outs = output
        return Response(self.model.reconstruct_npz(latents, outs), media_type="application/x-npz")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8102)
    args = ap.parse_args()
    apis = [
        Encode(max_batch_size=32, batch_timeout=0.001, api_path="/encode"),
        Reconstruct(max_batch_size=32, batch_timeout=0.001, api_path="/reconstruct"),
    ]
    server = RawServer(apis, accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
