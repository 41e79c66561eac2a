"""The outermost ASGI layer: request id, body limit, admission, auth and readiness of product routes, the
product routes themselves, request metrics, one access log line.

- ``X-Request-ID``: the caller's (when it is 1-128 characters of ``[A-Za-z0-9._-]``) or a fresh one, 32 hex
  digits (a random per-process prefix and a counter: unique without uuid4's system call per request), put in
  ``scope["state"]["request_id"]`` for the handlers and on every response, errors included.
- body limit: a ``Content-Length`` above ``max_body_bytes`` is refused before a byte is read (413
  ``body_too_large``); a chunked body is counted as it streams and refused the moment it passes the limit
  (Starlette itself caps neither uploads nor raw bodies).
- product routes (``service.http.Endpoint`` records) are served here, by path, without FastAPI's router,
  dependency solving or validation (their parameters are declared once, see ``service/http.py``); the rest of
  the app (health, metadata, metrics, the page, /docs) goes to FastAPI. What applies to a route is read from its
  record: ``admission`` (at most ``max_inflight`` such requests are read, decoded, queued or answered at once;
  one more gets 429 ``queue_full`` with ``Retry-After`` before its body is read: a burst holds at most
  ``max_inflight × max_body_bytes``, and a refusal costs one small write; beyond ``refusal_rate`` refusals per
  second each waits its turn, at most 1 s: service/pacing.py), ``auth`` (the bearer token).
- a client that hangs up before its request is read is a quiet info line and ``dae_client_disconnects_total``
  (status 499 in metrics and the access log, as nginx counts it), never a traceback.
- ``X-Execution-Provider`` on every response once a model is loaded.
- one access log line per request, except admission refusals: one ``refused`` line per second with their
  count (each is still in the metrics).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import (
    MethodNotAllowedError,
    PayloadTooLargeError,
    QueueFullError,
    ServiceError,
    error_body,
    is_oip_path,
)
from service.http import Call, Endpoint, Reply, check_auth, json_reply, not_ready
from service.logs import defer
from service.pacing import RefusalPacer
from service.state import AppState

access = logging.getLogger("service.access")
log = logging.getLogger("service.errors")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_ID_PREFIX = os.urandom(8).hex()  # per process (uvicorn's workers are spawned, so each draws its own)
_ID_COUNTER = itertools.count(1)
CLIENT_CLOSED = 499  # nginx's code for "the client closed the request before the answer"
RETRY_AFTER_S = 1  # an admission refusal's Retry-After, and the longest a paced refusal waits before it is sent


class BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` mid-stream; an HTTPException so FastAPI's body parsing re-raises it as is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


def _encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class RequestContext:
    """Wraps the framework app (``framework``); ``endpoints`` are the product routes served directly."""

    def __init__(
        self,
        framework: ASGIApp,
        *,
        state: AppState,
        endpoints: Sequence[Endpoint],
        wrap: Callable[[ASGIApp], ASGIApp] | None = None,
        framework_routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.framework = framework
        self.framework_routes = framework_routes
        self.state = state
        self.metrics = state.metrics
        self.max_body = state.settings.max_body_bytes
        self.max_inflight = state.settings.worker_inflight  # DAE_MAX_INFLIGHT itself unless DAE_WORKERS > 1
        workers = state.settings.workers
        self._limit = f"{self.max_inflight}" + (f" in each of {workers} workers" if workers > 1 else "")
        self.inflight = 0  # admitted requests not yet answered (one event loop: no lock needed)
        self.routes = {e.path: e for e in endpoints}
        # e.g. CORS: it must see product routes and the framework's alike
        self.inner: ASGIApp = wrap(self._route) if wrap else self._route
        self._durations: dict[tuple[str, str, str], Any] = {}
        self._m_inflight = self.metrics.rejections.labels("inflight")
        self._refused = 0  # admission refusals since the last summary line
        self.pacer = RefusalPacer(state.settings.worker_refusal_rate, RETRY_AFTER_S)
        self._paced = 0  # of those, refusals that waited their turn
        self._refused_since = 0.0  # the window's first refusal (time.monotonic)
        self._refused_last: tuple[int, str, str] = (429, "", "")  # status, endpoint, request id of the latest
        self._admitting: list[Any] | None = None

    # -- the outer layer ---------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.framework(scope, receive, send)
            return
        start = time.perf_counter()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        rid = incoming if incoming and _SAFE_ID.match(incoming) else f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"
        ctx = scope.setdefault("state", {})
        ctx.update(request_id=rid, arrival=time.monotonic(), headers=headers, status=500)
        endpoint = self.routes.get(scope["path"])
        if endpoint is not None:
            admitted = endpoint.admission and endpoint.method == scope["method"]
        else:
            admitted = self._framework_admits(scope)
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            err = PayloadTooLargeError(f"request body of {length} bytes exceeds the limit of {self.max_body} bytes")
            await self._send_error(scope, send, err, rid)
        elif admitted and self.inflight >= self.max_inflight:
            self._m_inflight.inc()
            full = QueueFullError(
                f"{self.inflight} requests are in progress (the limit is {self._limit}); retry later",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
            wait = self.pacer.delay()
            if wait > 0.0:  # beyond DAE_REFUSAL_RATE refusals per second: wait a turn (service/pacing.py)
                await asyncio.sleep(wait)
                ctx["paced"] = True
            await self._send_error(scope, send, full, rid)
            ctx["refused"] = True
        elif admitted:
            self.inflight += 1
            try:
                await self.inner(scope, receive, send)
            finally:
                self.inflight -= 1
        else:
            await self.inner(scope, receive, send)
        self._record(scope, endpoint, ctx["status"], time.perf_counter() - start, rid, ctx.get("refused", False))

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.routes.get(scope["path"])
        if endpoint is None:
            await self.framework(scope, self._counting(receive), self._stamping(scope, send))
        elif endpoint.method != scope["method"]:
            err = MethodNotAllowedError(
                f"method {scope['method']} not allowed on {scope['path']}", headers={"Allow": endpoint.method}
            )
            await self._send_error(scope, send, err, scope["state"]["request_id"])
        else:
            await self._serve(endpoint, scope, receive, send)

    # -- product routes ----------------------------------------------------------------------------------
    async def _serve(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = scope["state"]
        rid = ctx["request_id"]
        st = self.state
        try:
            if endpoint.auth and st.settings.auth_token is not None:
                try:
                    check_auth(st.settings, ctx["headers"])
                except ServiceError:
                    self.metrics.rejections.labels("auth").inc()
                    raise
            if st.draining or not st.ready or st.cases is None:
                self.metrics.rejections.labels("draining" if st.draining else "not_ready").inc()
                raise not_ready(st.draining, st.reason)
            call = Call(
                scope, receive, ctx["headers"], rid, ctx["arrival"] + st.settings.deadline_s, self.max_body, st.cases
            )
            reply = await endpoint.handler(call)
        except ClientDisconnect:
            ctx["status"] = CLIENT_CLOSED
            self.metrics.disconnects.labels(endpoint.path).inc()
            log.info("client disconnected", extra={"request_id": rid, "endpoint": endpoint.path})
            return
        except ServiceError as e:
            if e.status >= 500 and e.status not in (503, 504):
                log.error("internal error", extra={"request_id": rid}, exc_info=e)
            await self._send_error(scope, send, e, rid)
            return
        except Exception as e:  # a bug: 500 with the request id, the traceback in the log
            log.exception("unhandled error", extra={"request_id": rid}, exc_info=e)
            err = ServiceError("internal error (a bug: please report the request id)")
            await self._send_error(scope, send, err, rid)
            return
        await self._send(scope, send, reply, rid)

    def _provider(self) -> str | None:
        engine = self.state.engine
        return engine.runtime.primary_provider if engine is not None else None

    async def _send(self, scope: Scope, send: Send, reply: Reply, rid: str) -> None:
        raw = [(b"content-length", str(len(reply.body)).encode())]
        if reply.media_type:
            raw.append((b"content-type", reply.media_type.encode()))
        raw += _encode_headers(reply.headers)
        raw.append((b"x-request-id", rid.encode()))
        provider = self._provider()
        if provider:
            raw.append((b"x-execution-provider", provider.encode()))
        scope["state"]["status"] = reply.status
        await send({"type": "http.response.start", "status": reply.status, "headers": raw})
        await send({"type": "http.response.body", "body": reply.body})

    async def _send_error(self, scope: Scope, send: Send, err: ServiceError, rid: str) -> None:
        headers = {**err.headers, "X-Error-Code": err.code}
        if is_oip_path(scope["path"]):  # the Open Inference Protocol's own error shape
            body: dict[str, Any] = {"error": err.message}
        else:
            body = error_body(err.code, err.message, rid, err.details)
        await self._send(scope, send, json_reply(body, headers, err.status), rid)

    # -- the framework's routes --------------------------------------------------------------------------
    def _stamping(self, scope: Scope, send: Send) -> Send:
        ctx = scope["state"]

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                ctx["status"] = message["status"]
                h = MutableHeaders(scope=message)
                if "x-request-id" not in h:
                    h["X-Request-ID"] = ctx["request_id"]
                provider = self._provider()
                if provider and "x-execution-provider" not in h:
                    h["X-Execution-Provider"] = provider
            await send(message)

        return stamped

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

    def _framework_admits(self, scope: Scope) -> bool:
        """Whether a framework route marked ``service.http.admitted`` serves this request."""
        if self._admitting is None:  # read once the app is built: the routes carrying the mark
            self._admitting = [
                r for r in self.framework_routes if getattr(getattr(r, "endpoint", None), "admission", False)
            ]
        for route in self._admitting:
            if route.path_regex.match(scope["path"]) and scope["method"] in (route.methods or ()):
                scope["state"]["template"] = route.path
                return True
        return False

    # -- metrics and the access log ----------------------------------------------------------------------
    def _template(self, scope: Scope) -> str:
        """The framework route's template; for a request refused before routing (413), the template its path
        matches; else ``unmatched``."""
        route = scope.get("route")
        if route is not None and hasattr(route, "path"):
            return str(route.path)
        if "template" in scope["state"]:
            return str(scope["state"]["template"])
        for candidate in self.framework_routes:
            regex = getattr(candidate, "path_regex", None)
            if regex is not None and regex.match(scope["path"]):
                return str(getattr(candidate, "path", "unmatched"))
        return "unmatched"

    def _record(
        self, scope: Scope, endpoint: Endpoint | None, status: int, seconds: float, rid: str, refused: bool = False
    ) -> None:
        # The route template, never the raw path: raw paths would give every 404 its own time series.
        name = endpoint.path if endpoint is not None else self._template(scope)
        key = (name, scope["method"], str(status))
        child = self._durations.get(key)
        if child is None:  # labelled children resolved once per series, not per request
            child = self._durations[key] = self.metrics.request_duration.labels(*key)
        child.observe(seconds)
        if refused:
            # Admission refusals are one summary line per second, not a line each: under a storm of clients that
            # retry at once, a line per refusal would make the log itself the bottleneck (and the disk's). The
            # line is written by a timer one second after the window's first refusal, so the last refusals of a
            # storm are logged then, not at the next storm.
            if self._refused == 0:
                self._refused_since = time.monotonic()
                asyncio.get_running_loop().call_later(1.0, self._log_refused)
            self._refused += 1
            self._paced += 1 if scope["state"].get("paced") else 0
            self._refused_last = (status, name, rid)
            return
        if access.isEnabledFor(logging.INFO):
            fields = {
                "request_id": rid,
                "method": scope["method"],
                "path": scope["path"],
                "endpoint": name,
                "status": status,
                "seconds": round(seconds, 6),
            }
            defer(access, "request", fields)

    def _log_refused(self) -> None:
        status, name, rid = self._refused_last
        access.info(
            "refused",
            extra={
                "status": status,
                "reason": "inflight",
                "count": self._refused,
                "paced": self._paced,  # of them, answered after waiting their turn
                "endpoint": name,  # the latest one's
                "request_id": rid,  # the latest one
                "seconds": round(time.monotonic() - self._refused_since, 3),
            },
        )
        self._refused = self._paced = 0
