"""Python client for the DAE service (httpx; numpy + Pillow results; no torch). See docs/client.md.

from client import Client
with Client("http://127.0.0.1:8000") as dae:
    a, b = dae.encode_batch(["three.png", "seven.png"])
    dae.reconstruct("three.png").save("out", "three")
    frames = dae.interpolate(a, b, steps=8, factor="shape")

python -m client reconstruct digit.png --out DIR      # also: encode, decode, swap, interpolate
"""

from client.api import DEFAULT_URL, AsyncClient, Client
from client.errors import APIError, DAEClientError, RequestTimeoutError, TransportError
from client.results import Encoding, ImageInput, Result
from client.retry import RetryPolicy

__all__ = [
    "DEFAULT_URL",
    "APIError",
    "AsyncClient",
    "Client",
    "DAEClientError",
    "Encoding",
    "ImageInput",
    "RequestTimeoutError",
    "Result",
    "RetryPolicy",
    "TransportError",
]
