"""``Client`` (sync) and ``AsyncClient`` (asyncio) for the DAE service, on httpx. Same methods, same results.

    from client import Client
    with Client("http://127.0.0.1:8000") as dae:
        a, b = dae.encode_batch(["three.png", "seven.png"])
        dae.reconstruct("three.png").images["warped_grid"].save("grid.png")
        frames = dae.interpolate(a, b, steps=8, factor="shape")        # list[Result], frames[i].t

    async with AsyncClient(url, timeout=10, retry=RetryPolicy(attempts=6)) as dae:
        res = await dae.swap("three.png", "seven.png")

Errors: ``APIError`` (status, stable ``code``, message, request_id, retry_after), ``TransportError``,
``RequestTimeoutError``. 429 / 503 and refused connections are retried (``RetryPolicy``), honouring Retry-After.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import httpx

from client import calls as rq
from client.calls import ClassInput, Factor, LatentInput
from client.errors import APIError, RequestTimeoutError, TransportError
from client.results import Encoding, ImageInput, Result
from client.retry import RetryPolicy

DEFAULT_URL = "http://127.0.0.1:8000"
T = TypeVar("T")
Outputs = Sequence[str] | str | None


def default_url() -> str:
    return os.environ.get("DAE_SERVICE_URL", DEFAULT_URL)


def _headers(token: str | None) -> dict[str, str]:
    h = {"Accept": "application/json", "User-Agent": "dae-client/1"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    return h


def _timeout(timeout: float | httpx.Timeout) -> httpx.Timeout:
    return timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)


def _result(call: rq.Call[T], r: httpx.Response) -> T:
    if call.raw:
        return call.parse(r.content)
    try:
        body = r.json()
    except ValueError as e:
        raise APIError(r.status_code, "bad_response", f"expected JSON, got {r.headers.get('content-type')}") from e
    return call.parse(body)


def _transport(e: httpx.HTTPError, url: str) -> TransportError:
    if isinstance(e, httpx.TimeoutException):
        return RequestTimeoutError(f"no answer from {url} within the timeout ({type(e).__name__})")
    return TransportError(f"cannot reach {url}: {e or type(e).__name__}")


@dataclass(frozen=True)
class _Wait:
    """Not done yet: wait this long, then try again."""

    seconds: float


class _Base:
    """Everything but the I/O: what to send for a ``Call`` and what to do with each answer (shared by both)."""

    def __init__(
        self, url: str | None, token: str | None, timeout: float | httpx.Timeout, retry: RetryPolicy | None
    ) -> None:
        self.url = (url or default_url()).rstrip("/")
        self.retry = retry or RetryPolicy()
        self._args: dict[str, Any] = {"base_url": self.url, "headers": _headers(token), "timeout": _timeout(timeout)}

    @staticmethod
    def _request_args(call: rq.Call[Any]) -> dict[str, Any]:
        return {"method": call.method, "url": call.path, "params": call.params, "files": call.files, "json": call.json}

    def _outcome(self, call: rq.Call[T], attempt: int, answer: httpx.Response | httpx.TransportError) -> T | _Wait:
        """The parsed result, or a ``_Wait`` before the next try; raises when the call has failed for good."""
        if isinstance(answer, httpx.TimeoutException):  # not retried: the server may still be working on it
            raise _transport(answer, self.url) from answer
        if isinstance(answer, httpx.TransportError):
            if not self.retry.should_retry(attempt, None):
                raise _transport(answer, self.url) from answer
            return _Wait(self.retry.delay(attempt))
        if answer.is_success:
            return _result(call, answer)
        err = APIError.from_response(answer)
        if not self.retry.should_retry(attempt, answer.status_code):
            raise err
        return _Wait(self.retry.delay(attempt, err.retry_after))


class Client(_Base):
    """Blocking client. ``timeout``: seconds per try (or an ``httpx.Timeout``); ``token``: DAE_AUTH_TOKEN."""

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, token, timeout, retry)
        self._http = httpx.Client(transport=transport, **self._args)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: rq.Call[T]) -> T:
        for attempt in range(self.retry.attempts):
            answer: httpx.Response | httpx.TransportError
            try:
                answer = self._http.request(**self._request_args(call))
            except httpx.TransportError as e:
                answer = e
            out = self._outcome(call, attempt, answer)
            if not isinstance(out, _Wait):
                return out
            time.sleep(out.seconds)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def metadata(self) -> dict[str, Any]:
        """``/v2/models/{name}`` of the served model: variant, latent sizes, class names, outputs, limits."""
        name = self._send(rq.get_json("/v2"))["models"][0]
        return dict(self._send(rq.get_json(f"/v2/models/{name}")))

    def encode(self, image: ImageInput) -> Encoding:
        return self.encode_batch([image])[0]

    def encode_batch(self, images: Sequence[ImageInput]) -> list[Encoding]:
        return self._send(rq.encode(images))

    def reconstruct(self, image: ImageInput, *, outputs: Outputs = None, class_: ClassInput = None) -> Result:
        return self.reconstruct_batch([image], outputs=outputs, class_=class_)[0]

    def reconstruct_batch(
        self, images: Sequence[ImageInput], *, outputs: Outputs = None, class_: ClassInput = None
    ) -> list[Result]:
        return self._send(rq.reconstruct(images, outputs, class_))

    def decode(self, latent: LatentInput, *, outputs: Outputs = None, class_: ClassInput = None) -> Result:
        return self.decode_batch([latent], outputs=outputs, class_=class_)[0]

    def decode_batch(
        self, latents: Sequence[LatentInput], *, outputs: Outputs = None, class_: ClassInput = None
    ) -> list[Result]:
        return self._send(rq.decode(latents, outputs, class_))

    def swap(
        self, shape: ImageInput, appearance: ImageInput, *, outputs: Outputs = None, class_: ClassInput = None
    ) -> Result:
        """The shape of ``shape`` with the appearance of ``appearance``."""
        return self._send(rq.swap(shape, appearance, outputs, class_))

    def interpolate(
        self,
        start: LatentInput,
        end: LatentInput,
        *,
        steps: int = 8,
        factor: Factor = "both",
        outputs: Outputs = None,
        class_: ClassInput = None,
    ) -> list[Result]:
        """``steps`` frames from ``start`` to ``end`` moving ``factor``; the ends are the given latents exactly."""
        return self._send(rq.interpolate(start, end, steps, factor, outputs, class_))

    def interpolate_gif(
        self,
        start: LatentInput,
        end: LatentInput,
        *,
        steps: int = 8,
        factor: Factor = "both",
        outputs: Outputs = None,
        class_: ClassInput = None,
    ) -> bytes:
        """The same frames as an animated GIF, rendered by the service."""
        return self._send(rq.interpolate_gif(start, end, steps, factor, outputs, class_))


class AsyncClient(_Base):
    """The asyncio twin of ``Client`` (``await`` every method; ``async with``)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, token, timeout, retry)
        self._http = httpx.AsyncClient(transport=transport, **self._args)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: rq.Call[T]) -> T:
        for attempt in range(self.retry.attempts):
            answer: httpx.Response | httpx.TransportError
            try:
                answer = await self._http.request(**self._request_args(call))
            except httpx.TransportError as e:
                answer = e
            out = self._outcome(call, attempt, answer)
            if not isinstance(out, _Wait):
                return out
            await asyncio.sleep(out.seconds)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def metadata(self) -> dict[str, Any]:
        name = (await self._send(rq.get_json("/v2")))["models"][0]
        return dict(await self._send(rq.get_json(f"/v2/models/{name}")))

    async def encode(self, image: ImageInput) -> Encoding:
        return (await self.encode_batch([image]))[0]

    async def encode_batch(self, images: Sequence[ImageInput]) -> list[Encoding]:
        return await self._send(rq.encode(images))

    async def reconstruct(self, image: ImageInput, *, outputs: Outputs = None, class_: ClassInput = None) -> Result:
        return (await self.reconstruct_batch([image], outputs=outputs, class_=class_))[0]

    async def reconstruct_batch(
        self, images: Sequence[ImageInput], *, outputs: Outputs = None, class_: ClassInput = None
    ) -> list[Result]:
        return await self._send(rq.reconstruct(images, outputs, class_))

    async def decode(self, latent: LatentInput, *, outputs: Outputs = None, class_: ClassInput = None) -> Result:
        return (await self.decode_batch([latent], outputs=outputs, class_=class_))[0]

    async def decode_batch(
        self, latents: Sequence[LatentInput], *, outputs: Outputs = None, class_: ClassInput = None
    ) -> list[Result]:
        return await self._send(rq.decode(latents, outputs, class_))

    async def swap(
        self, shape: ImageInput, appearance: ImageInput, *, outputs: Outputs = None, class_: ClassInput = None
    ) -> Result:
        return await self._send(rq.swap(shape, appearance, outputs, class_))

    async def interpolate(
        self,
        start: LatentInput,
        end: LatentInput,
        *,
        steps: int = 8,
        factor: Factor = "both",
        outputs: Outputs = None,
        class_: ClassInput = None,
    ) -> list[Result]:
        return await self._send(rq.interpolate(start, end, steps, factor, outputs, class_))

    async def interpolate_gif(
        self,
        start: LatentInput,
        end: LatentInput,
        *,
        steps: int = 8,
        factor: Factor = "both",
        outputs: Outputs = None,
        class_: ClassInput = None,
    ) -> bytes:
        return await self._send(rq.interpolate_gif(start, end, steps, factor, outputs, class_))
