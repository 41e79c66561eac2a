"""The product endpoints' HTTP side without a framework on the hot path: a request view, declared query
parameters parsed by hand, uploads, and replies.

Product routes are plain ``async def handler(call: Call) -> Reply`` functions listed as ``Endpoint`` records
(``service/routes/images.py``, ``latents.py``); ``service/middleware.py`` dispatches to them by path, before
FastAPI's router. Their parameters are declared once as ``Param``: the declaration gives both the OpenAPI
parameter (``Endpoint.doc_route`` builds the schema-only FastAPI route) and the parser, so schema and behaviour
cannot drift. A value that breaks a declaration is a 422 ``validation_error`` with FastAPI's detail layout.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope

from service import imaging
from service.config import Settings
from service.errors import (
    BadRequestError,
    NotReadyError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnprocessableError,
    UnsupportedMediaTypeError,
)
from service.usecases import UseCases

RAW_TYPES = tuple(imaging.MEDIA_TYPES)
JSON = "application/json"


@dataclass(frozen=True)
class Param:
    """One query parameter: a string, an integer, or one of ``choices``; ``None`` default = optional."""

    name: str
    description: str = ""
    choices: tuple[str, ...] = ()
    default: str | int | None = None
    integer: bool = False
    examples: tuple[str, ...] = ()

    def openapi(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer" if self.integer else "string"}
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.default is not None:
            schema["default"] = self.default
        out: dict[str, Any] = {"name": self.name, "in": "query", "required": False, "schema": schema}
        if self.description:
            out["description"] = self.description
        if self.examples:
            out["examples"] = {e: {"value": e} for e in self.examples}
        return out

    def parse(self, raw: str | None) -> Any:
        if raw is None:
            return self.default
        if self.integer:
            try:
                return int(raw)
            except ValueError:
                raise invalid(
                    self.name, "Input should be a valid integer, unable to parse string as an integer", "int_parsing"
                ) from None
        if self.choices and raw not in self.choices:
            listed = ", ".join(f"'{c}'" for c in self.choices[:-1]) + f" or '{self.choices[-1]}'"
            raise invalid(self.name, f"Input should be {listed}", "literal_error")
        return raw


def invalid(name: str, msg: str, kind: str) -> UnprocessableError:
    details = [{"loc": ["query", name], "msg": msg, "type": kind}]
    return UnprocessableError(f"invalid request: query.{name}: {msg}", "validation_error", details=details)


@dataclass(slots=True)
class Reply:
    body: bytes
    media_type: str = JSON
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(body: Any, headers: dict[str, str] | None = None, status: int = 200) -> Reply:
    return Reply(orjson.dumps(body), JSON, status, headers or {})


class Call:
    """One product request as the handlers see it: headers, query, body, uploads; the deadline."""

    __slots__ = ("_query", "cases", "deadline", "headers", "max_body", "receive", "request_id", "scope")

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        headers: dict[str, str],
        request_id: str,
        deadline: float,
        max_body: int,
        cases: UseCases,
    ) -> None:
        self.cases = cases
        self.scope = scope
        self.receive = receive
        self.headers = headers
        self.request_id = request_id
        self.deadline = deadline
        self.max_body = max_body
        self._query: list[tuple[str, str]] | None = None

    @property
    def query(self) -> list[tuple[str, str]]:
        if self._query is None:
            qs = self.scope.get("query_string", b"")
            self._query = parse_qsl(qs.decode("latin-1"), keep_blank_values=True) if qs else []
        return self._query

    def param(self, p: Param) -> Any:
        raw = None
        for k, v in self.query:  # the last occurrence wins, as in Starlette's QueryParams
            if k == p.name:
                raw = v
        return p.parse(raw)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    async def body(self) -> bytes:
        """The whole body; 413 the moment it passes ``max_body``; ``ClientDisconnect`` if the client left."""
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            if chunk:
                seen += len(chunk)
                if seen > self.max_body:
                    raise PayloadTooLargeError(f"request body exceeds the limit of {self.max_body} bytes")
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _limited_receive(self) -> Receive:
        seen = 0

        async def receive() -> Any:
            nonlocal seen
            message = await self.receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise PayloadTooLargeError(f"request body exceeds the limit of {self.max_body} bytes")
            return message

        return receive

    async def uploads(self, limit: int, names: tuple[str, ...] | None = None) -> list[tuple[str, bytes]]:
        """The request's images as (label, bytes): multipart files (any field name, or exactly ``names``), or one
        raw ``image/png|jpeg|webp|gif`` body. Too many → 413 ``too_many_images``; none → 400 ``no_images``."""
        ctype = self.content_type
        if ctype in RAW_TYPES:
            if names is not None and len(names) > 1:
                raise UnsupportedMediaTypeError(
                    f"this endpoint needs multipart/form-data with files {list(names)}", "unsupported_media_type"
                )
            body = await self.body()
            if not body:
                raise BadRequestError("empty request body", "body_empty")
            return [(names[0] if names else "image 0", body)]
        if ctype == "multipart/form-data":
            return await self._multipart(limit, names)
        raise UnsupportedMediaTypeError(
            f"content type {ctype or '(none)'} is not accepted: send multipart/form-data (image files) or a raw "
            f"body of type {', '.join(t for t in RAW_TYPES if t != 'image/jpg')}",
            "unsupported_media_type",
        )

    async def _multipart(self, limit: int, names: tuple[str, ...] | None) -> list[tuple[str, bytes]]:
        request = Request(self.scope, self._limited_receive())
        try:
            form = await request.form(max_files=limit, max_fields=limit + 8)
        except (StarletteHTTPException, MultiPartException) as e:
            detail = str(e.detail if isinstance(e, StarletteHTTPException) else e.message)
            if "too many files" in detail.lower():
                raise PayloadTooLargeError(f"more than {limit} images in one request", "too_many_images") from e
            raise BadRequestError(f"malformed multipart body: {detail}", "multipart_invalid") from e
        try:
            files = [(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile)]
            if names is not None:
                by_name = {k: v for k, v in files}
                missing = [n for n in names if n not in by_name]
                if missing:
                    raise BadRequestError(
                        f"multipart body needs file fields {list(names)}; missing {missing}", "image_missing"
                    )
                files = [(n, by_name[n]) for n in names]
            if not files:
                raise BadRequestError("no image files in the multipart body", "no_images")
            return [(k if names else f"image {i} ({k})", await v.read()) for i, (k, v) in enumerate(files)]
        finally:
            await form.close()


def check_auth(settings: Settings, headers: dict[str, str]) -> None:
    """Bearer-token auth for product endpoints when ``DAE_AUTH_TOKEN`` is set: a 401 unless the token matches."""
    token = settings.auth_token
    if token is None:
        return
    scheme, _, given = headers.get("authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="dae"'}
    if scheme.lower() != "bearer" or not given:
        raise UnauthorizedError(
            "this endpoint needs 'Authorization: Bearer <token>'", "auth_required", headers=challenge
        )
    if not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        raise UnauthorizedError("invalid bearer token", "auth_invalid", headers=challenge)


def not_ready(draining: bool, reason: str | None) -> NotReadyError:
    if draining:
        return NotReadyError("the service is shutting down", "draining", headers={"Retry-After": "1"})
    return NotReadyError(f"the model is not ready ({reason})", "not_ready", headers={"Retry-After": "1"})


Handler = Callable[[Call], Awaitable[Reply]]
F = TypeVar("F", bound=Callable[..., Any])


def admitted(endpoint: F) -> F:
    """Route metadata for a route FastAPI serves: its requests count against ``DAE_MAX_INFLIGHT`` like the product
    routes' (``Endpoint.admission``), e.g. OIP inference. The middleware reads it; no list of paths anywhere."""
    endpoint.admission = True  # type: ignore[attr-defined]
    return endpoint


@dataclass(frozen=True)
class Endpoint:
    """A product route and its metadata: the middleware reads ``admission`` and ``auth`` from here."""

    method: str
    path: str
    handler: Handler
    doc: Callable[..., Any]  # schema-only FastAPI endpoint: its signature documents a body model, if any
    params: tuple[Param, ...] = ()
    tags: tuple[str, ...] = ()
    responses: dict[int | str, dict[str, Any]] = field(default_factory=dict)
    response_model: Any = None
    openapi_extra: dict[str, Any] = field(default_factory=dict)
    admission: bool = True  # counts against DAE_MAX_INFLIGHT
    auth: bool = True  # needs the bearer token when DAE_AUTH_TOKEN is set

    def doc_route(self) -> APIRoute:
        """The FastAPI route that only describes this endpoint in /openapi.json (it never serves)."""
        extra = {**self.openapi_extra, "parameters": [p.openapi() for p in self.params]}
        return APIRoute(
            self.path,
            self.doc,
            methods=[self.method],
            tags=list(self.tags),
            responses=self.responses,
            response_model=self.response_model,
            description=(self.handler.__doc__ or "").strip(),
            name=self.handler.__name__,
            summary=self.handler.__name__.replace("_", " ").capitalize(),
            openapi_extra=extra,
        )
