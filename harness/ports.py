"""A free TCP port on loopback (the one definition: tests, bench and stress all bind servers with it)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on right now. Another process could take it before the caller binds it; on a
    test machine that race is rare enough, and the server then fails to start with a clear message."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
