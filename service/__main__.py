"""``python -m service``: serve the bundle with uvicorn, draining gracefully on SIGTERM.

    DAE_BUNDLE=models/mnist DAE_HOST=127.0.0.1 DAE_PORT=8000 python -m service
    DAE_WORKERS=2 python -m service          # two service processes on the port (service/workers.py)
    make run                                 # the same, from a fresh machine (installs the `cpu` extra)

SIGTERM / SIGINT: readiness turns 503 and new product requests are refused (``draining``) at once; after
``DAE_SHUTDOWN_DELAY_S`` the listener closes, accepted requests finish (up to ``DAE_DRAIN_TIMEOUT_S``),
and the process exits 0 (service/server.py). A bundle or provider problem exits 3 with one log line naming it.
"""

from __future__ import annotations

import sys

from pydantic import ValidationError

from service.config import Settings
from service.logs import configure


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as e:
        print(f"invalid DAE_ settings:\n{e}", file=sys.stderr)
        return 2
    configure(settings.log_level, settings.log_json)
    if settings.workers > 1:
        from service.workers import supervise  # the supervisor never loads a model: no app in this process

        return supervise(settings)
    from service.server import serve

    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
