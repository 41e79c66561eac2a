"""Container health probe: exit 0 when the service on this host answers 200 on /v2/health/ready.

The Dockerfile's HEALTHCHECK and docker-compose.yml run it as `python /opt/dae/healthcheck.py`. It uses the
standard library only (the image has no curl) and reads the port the service listens on from DAE_PORT.
Readiness is the right probe for a container: it is 503 until the bundle is loaded and warmed up, and again
while the service drains after SIGTERM, so a load balancer stops sending traffic before the process exits.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

READY_PATH = "/v2/health/ready"


def probe(port: int, timeout_s: float = 2.0) -> tuple[bool, str]:
    """(healthy, reason) for the service on 127.0.0.1:port."""
    url = f"http://127.0.0.1:{port}{READY_PATH}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status == 200, f"{url} -> {resp.status}"
    except urllib.error.HTTPError as exc:  # 503 while loading or draining
        return False, f"{url} -> {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url} unreachable: {exc}"


def main() -> int:
    raw = os.environ.get("DAE_PORT", "8000")
    try:
        port = int(raw)
    except ValueError:
        print(f"healthcheck: DAE_PORT={raw!r} is not a port number", file=sys.stderr)
        return 1
    healthy, reason = probe(port)
    print(reason)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
