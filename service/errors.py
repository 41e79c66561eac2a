"""One exception tree, one JSON error shape: ``{"error": {"code", "message", "request_id"}}``.

    ServiceError (500 internal_error: only real bugs end here)
    ├── BadRequestError             400  image_undecodable, image_truncated, body_empty,
    │                                    multipart_invalid,
    │                               code_malformed, code_checksum, code_version, class_unknown, ...
    ├── UnauthorizedError           401  auth_required, auth_invalid
    ├── NotFoundError               404  not_found, model_not_found
    ├── MethodNotAllowedError       405  method_not_allowed
    ├── PayloadTooLargeError        413  body_too_large, image_too_large, too_many_images
    ├── UnsupportedMediaTypeError   415  unsupported_media_type, unsupported_image_mode
    ├── UnprocessableError          422  validation_error, code_foreign_model, latent_wrong_length,
    │                               latent_not_finite, steps_out_of_range, output_unavailable, ...
    ├── QueueFullError              429  queue_full (with Retry-After)
    ├── NotReadyError               503  not_ready, draining
    └── DeadlineExceededError       504  deadline_exceeded

``install_handlers`` maps this tree, FastAPI's validation errors and Starlette's 404/405 onto the one shape;
the stable ``code`` is what clients switch on, the message is for people.

Under ``/v2`` (the Open Inference Protocol) the body is the protocol's ``{"error": "<message>"}`` instead, which
Triton's and KServe's clients read; the stable code is then in the ``X-Error-Code`` header (always sent).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("service.errors")


class ServiceError(Exception):
    status = 500
    default_code = "internal_error"

    def __init__(
        self,
        message: str,
        code: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.headers = headers or {}
        self.details = details


class BadRequestError(ServiceError):
    status, default_code = 400, "bad_request"


class UnauthorizedError(ServiceError):
    status, default_code = 401, "auth_required"


class NotFoundError(ServiceError):
    status, default_code = 404, "not_found"


class MethodNotAllowedError(ServiceError):
    status, default_code = 405, "method_not_allowed"


class PayloadTooLargeError(ServiceError):
    status, default_code = 413, "body_too_large"


class UnsupportedMediaTypeError(ServiceError):
    status, default_code = 415, "unsupported_media_type"


class UnprocessableError(ServiceError):
    status, default_code = 422, "validation_error"


class QueueFullError(ServiceError):
    status, default_code = 429, "queue_full"


class NotReadyError(ServiceError):
    status, default_code = 503, "not_ready"


class DeadlineExceededError(ServiceError):
    status, default_code = 504, "deadline_exceeded"


_BY_STATUS: dict[int, type[ServiceError]] = {
    c.status: c
    for c in (
        BadRequestError,
        UnauthorizedError,
        NotFoundError,
        MethodNotAllowedError,
        PayloadTooLargeError,
        UnsupportedMediaTypeError,
        UnprocessableError,
        QueueFullError,
        NotReadyError,
        DeadlineExceededError,
    )
}


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or request.headers.get("x-request-id", ""))


def error_body(code: str, message: str, request_id: str, details: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if details is not None:
        err["details"] = details
    return {"error": err}


def is_oip_path(path: str) -> bool:
    """Routes of the Open Inference Protocol, whose clients expect ``{"error": "<message>"}``."""
    return path == "/v2" or path.startswith("/v2/")


def error_response(exc: ServiceError, request_id: str, path: str = "") -> JSONResponse:
    headers = {"X-Request-ID": request_id, **exc.headers} if request_id else dict(exc.headers)
    headers["X-Error-Code"] = exc.code
    if is_oip_path(path):
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)
    return JSONResponse(
        error_body(exc.code, exc.message, request_id, exc.details), status_code=exc.status, headers=headers
    )


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Keep location and message; drop "input" (it can echo a multi-megabyte body back to the caller).
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""

    async def on_service_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        if exc.status >= 500 and exc.status not in (503, 504):
            log.error("internal error", extra={"request_id": request_id_of(request)}, exc_info=exc)
        return error_response(exc, request_id_of(request), request.scope["path"])

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = _validation_details(exc)
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        err = UnprocessableError(f"invalid request: {where}: {first['msg']}", "validation_error", details=details)
        return error_response(err, request_id_of(request), request.scope["path"])

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        cls = _BY_STATUS.get(exc.status_code, ServiceError)
        message = str(exc.detail) if exc.detail else cls.default_code.replace("_", " ")
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        err = cls(message, headers=dict(exc.headers or {}))
        err.status = exc.status_code
        return error_response(err, request_id_of(request), request.scope["path"])

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"request_id": request_id_of(request)}, exc_info=exc)
        return error_response(
            ServiceError("internal error (a bug: please report the request id)"),
            request_id_of(request),
            request.scope["path"],
        )

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
