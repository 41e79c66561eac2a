"""What the client raises. Every failure is a ``DAEClientError``; switch on ``APIError.code`` (stable), show
``message`` to people.

    APIError(status, code, message, request_id, retry_after)   the service answered with an error
    TransportError                                             it could not be reached / the connection broke
    RequestTimeoutError(TransportError)                             no answer within the timeout
"""

from __future__ import annotations

from typing import Any

import httpx


class DAEClientError(Exception):
    """Base of every client error."""


class APIError(DAEClientError):
    """An error response, in the service's one shape ``{"error": {"code", "message", "request_id"}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        retry_after: float | None = None,
        details: Any = None,
    ) -> None:
        self.status, self.code, self.message = status, code, message
        self.request_id, self.retry_after, self.details = request_id, retry_after, details
        rid = f", request {request_id}" if request_id else ""
        super().__init__(f"{code}: {message} (HTTP {status}{rid})")

    @classmethod
    def from_response(cls, r: httpx.Response) -> APIError:
        """Parse an error response; a body that is not the service's shape (a proxy's page) still gives one."""
        err: dict[str, Any] = {}
        try:
            body = r.json()
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                err = body["error"]
        except ValueError:
            pass
        message = str(err.get("message") or r.text[:200].strip() or r.reason_phrase or "error")
        return cls(
            r.status_code,
            str(err.get("code") or f"http_{r.status_code}"),
            message,
            err.get("request_id") or r.headers.get("x-request-id"),
            parse_retry_after(r.headers.get("retry-after")),
            err.get("details"),
        )


class TransportError(DAEClientError):
    """The service could not be reached, or the connection failed mid-request."""


class RequestTimeoutError(TransportError):
    """No complete answer within the client's timeout."""


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), or None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
