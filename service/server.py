"""One service process: the app on uvicorn, draining gracefully on SIGTERM (``python -m service`` runs one, or
``DAE_WORKERS`` of them under service/workers.py's supervisor, each on the socket the supervisor bound).

SIGTERM / SIGINT: readiness turns 503 and new product requests are refused (``draining``) at once; after
``DAE_SHUTDOWN_DELAY_S`` the listener closes, accepted requests finish (up to ``DAE_DRAIN_TIMEOUT_S``),
and the process exits 0. A bundle or provider problem exits 3 (uvicorn's startup failure) with one log line.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from service.config import Settings
from service.protocol import MAX_HEAD_BYTES, ServiceHttpTools

if TYPE_CHECKING:
    from fastapi import FastAPI

    from service.state import AppState

log = logging.getLogger("service")
GIL_SWITCH_S = 0.0005
STARTUP_FAILURE = 3  # uvicorn's own exit code when the lifespan startup fails


class DrainingServer(uvicorn.Server):
    """uvicorn, but a signal first flips the app to draining, then (after a delay) lets uvicorn stop."""

    def __init__(self, config: uvicorn.Config, state: AppState) -> None:
        super().__init__(config)
        self.dae_state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state = self.dae_state
        first = not state.draining
        state.draining, state.ready = True, False
        delay = state.settings.shutdown_delay_s
        if first and delay > 0:
            log.info("draining", extra={"signal": sig, "delay_s": delay})
            asyncio.get_event_loop().call_later(delay, self._stop, sig, frame)
            return
        self._stop(sig, frame)

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises captured signals after its shutdown (the process then dies *by* SIGTERM); a
        # completed drain is a normal exit here, so forget them and let serve() return 0.
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()


def uvicorn_config(app: FastAPI | str, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.drain_timeout_s) or 1,
        lifespan="on",
        # h11 refuses a request head (request line + headers) that arrives in pieces once 16 KiB are buffered,
        # so whether a long query (e.g. explicit latents in /interpolate) parsed depended on how TCP split it.
        # Heads up to this size now always parse, and the handlers answer them with their own 4xx.
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        http=ServiceHttpTools if settings.http == "httptools" else "h11",
        # uvloop when installed (the `serve` extra): a cheaper event loop for the same code.
        loop="auto",
    )


def serve(settings: Settings, sockets: list[socket.socket] | None = None) -> int:
    """Run the service until it is stopped; the exit code (0, or 3 when it could not start)."""
    # The event loop thread and the batch threads share the GIL; at the default 5 ms switch interval a batch
    # thread whose session.run has returned waits up to 5 ms for a busy loop to let go, per return. Measured:
    # /encode at 16 connections ~1.5x faster with 0.5 ms (docs/benchmarks.md).
    sys.setswitchinterval(GIL_SWITCH_S)
    # imported here, not above: the supervisor of DAE_WORKERS imports this module but never loads a model
    from service.app import create_app

    app = create_app(settings)
    server = DrainingServer(uvicorn_config(app, settings), app.state.dae)
    server.run(sockets)
    return 0 if server.started else STARTUP_FAILURE
