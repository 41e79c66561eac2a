"""The outermost ASGI layer: request id, body limit, request metrics, one structured access log line.

- ``X-Request-ID``: the caller's (when it is 1-128 characters of ``[A-Za-z0-9._-]``) or a fresh uuid4 hex,
  put in ``scope["state"]["request_id"]`` for the handlers and on every response, errors included.
- body limit: a ``Content-Length`` above ``max_body_bytes`` is refused before a byte is read (413
  ``body_too_large``); a chunked body is counted as it streams and refused the moment it passes the limit
  (Starlette itself caps neither uploads nor raw bodies).
- admission: at most ``max_inflight`` product requests (``PRODUCT_PATHS`` and the OIP inference routes) are
  being read, decoded, queued or answered at once; one more gets 429 ``queue_full`` with ``Retry-After``
  before its body is read. The batch queues bound *images* but only see a request after its upload is
  parsed; this bounds what a burst can hold in memory (``max_inflight × max_body_bytes``) and makes refusals
  instant.
- ``X-Execution-Provider`` on every response once a model is loaded.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLargeError, QueueFullError, error_response
from service.metrics import Metrics
from service.oip import INFER_TEMPLATE, is_infer_path

access = logging.getLogger("service.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
PRODUCT_PATHS = frozenset({"/encode", "/reconstruct", "/decode", "/swap", "/interpolate"})


class BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` mid-stream; an HTTPException so FastAPI's body parsing re-raises it as is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


class RequestContext:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        provider: Callable[[], str | None],
        max_inflight: int = 128,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.provider = provider
        self.max_inflight = max_inflight
        self.inflight = 0  # product requests admitted and not yet answered (one event loop: no lock needed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        incoming = headers.get("x-request-id", "")
        rid = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        state["arrival"] = time.monotonic()
        start = time.perf_counter()
        status = [500]

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                h = MutableHeaders(scope=message)
                if "x-request-id" not in h:
                    h["X-Request-ID"] = rid
                provider = self.provider()
                if provider and "x-execution-provider" not in h:
                    h["X-Execution-Provider"] = provider
            await send(message)

        length = headers.get("content-length")
        product = scope["path"] in PRODUCT_PATHS or is_infer_path(scope["path"])
        if length is not None and length.isdigit() and int(length) > self.max_body:
            err = PayloadTooLargeError(
                f"request body of {length} bytes exceeds the limit of {self.max_body} bytes"
            )
            await error_response(err, rid, scope["path"])(scope, receive, send_wrapped)
        elif product and self.inflight >= self.max_inflight:
            self.metrics.rejections.labels("inflight").inc()
            full = QueueFullError(
                f"{self.inflight} requests are in progress (the limit is {self.max_inflight}); retry later",
                headers={"Retry-After": "1"},
            )
            await error_response(full, rid, scope["path"])(scope, receive, send_wrapped)
        elif product:
            self.inflight += 1
            try:
                await self.app(scope, self._counting(receive), send_wrapped)
            finally:
                self.inflight -= 1
        else:
            await self.app(scope, self._counting(receive), send_wrapped)
        self._record(scope, status[0], time.perf_counter() - start, rid)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        return wrapped

    def _record(self, scope: Scope, status: int, seconds: float, rid: str) -> None:
        route = scope.get("route")
        # The route template, never the raw path: raw paths would give every 404 its own time series.
        # Requests refused here (413, admission) never reach a route: a product path is still a known template.
        path = scope["path"]
        endpoint = getattr(route, "path", None) or (
            path if path in PRODUCT_PATHS else INFER_TEMPLATE if is_infer_path(path) else "unmatched"
        )
        self.metrics.request_duration.labels(endpoint, scope["method"], str(status)).observe(seconds)
        access.info(
            "request",
            extra={
                "request_id": rid,
                "method": scope["method"],
                "path": scope["path"],
                "endpoint": endpoint,
                "status": status,
                "seconds": round(seconds, 6),
            },
        )
