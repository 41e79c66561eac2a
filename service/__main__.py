"""``python -m service``: serve the bundle with uvicorn, draining gracefully on SIGTERM.

    DAE_BUNDLE=models/mnist DAE_HOST=127.0.0.1 DAE_PORT=8000 python -m service
    make run                                 # the same, from a fresh machine (installs the `cpu` extra)

SIGTERM / SIGINT: readiness turns 503 and new product requests are refused (``draining``) at once; after
``DAE_SHUTDOWN_DELAY_S`` the listener closes, accepted requests finish (up to ``DAE_DRAIN_TIMEOUT_S``),
and the process exits 0. A bundle or provider problem exits 3 with one log line naming it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError

from service.app import create_app
from service.config import Settings
from service.logs import configure
from service.protocol import MAX_HEAD_BYTES, ServiceHttpTools
from service.state import AppState

log = logging.getLogger("service")
GIL_SWITCH_S = 0.0005


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
        # completed drain is a normal exit here, so forget them and let main() return 0.
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as e:
        print(f"invalid DAE_ settings:\n{e}", file=sys.stderr)
        return 2
    configure(settings.log_level, settings.log_json)
    # The event loop thread and the batch threads share the GIL; at the default 5 ms switch interval a batch
    # thread whose session.run has returned waits up to 5 ms for a busy loop to let go, per return. Measured:
    # /encode at 16 connections ~1.5x faster with 0.5 ms (docs/benchmarks.md).
    sys.setswitchinterval(GIL_SWITCH_S)
    app = create_app(settings)
    config = uvicorn.Config(
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
    server = DrainingServer(config, app.state.dae)
    server.run()
    if not server.started:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
