"""uvicorn's httptools protocol with the two limits the service needs (``DAE_HTTP=httptools``, the default).

httptools parses requests several times faster than h11 (uvicorn's pure-Python parser), which is most of an
answer's HTTP cost, refusals included. Two differences from h11 are closed here:

- its URL parser stops at 64 KiB (uvicorn then answers a plain-text 400), while the API takes long queries
  (explicit latents in ``/interpolate``): a longer URL is split at ``?`` by hand, so the app answers it with
  its own JSON 4xx, exactly as under h11;
- it has no limit on the request head at all: heads above ``MAX_HEAD_BYTES`` (h11's setting in
  ``service/server.py``) are refused the way h11 refuses them, with uvicorn's 400.

The hostile-input corpus (tests/service/reliability) pins both against a real server.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 256 * 1024
URL_PARSER_LIMIT = 65535  # httptools.parse_url: "url length ... exceeds the maximum of 65535 bytes"


class HeadTooLargeError(Exception):
    """Raised from a parser callback: httptools turns it into HttpParserCallbackError, uvicorn into a 400."""


class ServiceHttpTools(HttpToolsProtocol):
    _head_bytes = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLargeError(f"request head over {MAX_HEAD_BYTES} bytes")

    def on_headers_complete(self) -> None:
        if len(self.url) <= URL_PARSER_LIMIT:
            super().on_headers_complete()
            return
        path, _, query = self.url.partition(b"?")
        self.url = path[:URL_PARSER_LIMIT]  # a path this long matches no route: 404 from the app
        super().on_headers_complete()
        # The request's task exists but has not run yet: it sees the whole query.
        self.scope["query_string"] = query
