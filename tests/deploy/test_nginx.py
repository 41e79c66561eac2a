"""deploy/nginx/dae.conf.template, run by a real nginx on loopback in front of two real service processes.

    .venv/bin/python -m pytest tests/deploy/test_nginx.py -q       (nginx: make docker-check installs it)

The template is rendered the way the official nginx image does it (envsubst of the variables set in the
container's environment, here compose's `lb-cpu` environment) and included into a minimal main config, as the
image's nginx.conf includes conf.d. Only the Docker-network specifics change: the upstream servers (compose:
one DNS alias with `resolve`, nginx >= 1.27.3; here: two loopback ports, same parameters), the resolver, and
the listen address. Both replicas run with compose's `dae-replica-cpu` environment.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.ports import free_port

from .conftest import REPO, duration_s
from .procs import Running, image_run

TEMPLATE = REPO / "deploy" / "nginx" / "dae.conf.template"
_ENVSUBST = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def envsubst(text: str, env: dict[str, str]) -> str:
    """GNU envsubst restricted to the defined variables (what the nginx image's entrypoint does)."""
    return _ENVSUBST.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), text)


def local_upstreams(compose_value: str, ports: list[int]) -> str:
    """compose's `server dae-upstream:8000 resolve <params>;` as one loopback server per port, same params."""
    m = re.fullmatch(r"server\s+\S+\s+resolve\s+(?P<params>[^;]*);", compose_value.strip())
    assert m is not None, f"unexpected DAE_LB_UPSTREAM_SERVERS: {compose_value!r}"
    return " ".join(f"server 127.0.0.1:{p} {m['params']};" for p in ports)


@dataclass
class Balancer:
    url: str
    access_log: Path
    replicas: list[Running]

    def upstreams(self, request_id_prefix: str = "") -> list[str]:
        """$upstream_addr (comma-separated when nginx retried) of the logged requests whose id has the prefix."""
        rows = [ln.split("|") for ln in self.access_log.read_text().splitlines() if ln.strip()]
        return [row[1] for row in rows if row[2].startswith(request_id_prefix)]


def _main_conf(tmp: Path, include: Path) -> str:
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers must reach tmp (0700) when run as root
    temp = "\n".join(
        f"    {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\npid {tmp / 'nginx.pid'};\nerror_log {tmp / 'error.log'} notice;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "    log_format upstreams '$status|$upstream_addr|$http_x_request_id|$request_uri';\n"
        f"    access_log {tmp / 'access.log'} upstreams;\n"
        f"{temp}\n"
        f"    include {include};\n"
        "}\n"
    )


@pytest.fixture(scope="module")
def balancer(
    compose_config: Callable[..., dict[str, Any]],
    nginx_bin: Path,
    bundle: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Balancer]:
    services = compose_config("scaled-cpu")["services"]
    replica, lb = services["dae-replica-cpu"], services["lb-cpu"]
    tmp = tmp_path_factory.mktemp("lb")
    replicas: list[Running] = []
    nginx: subprocess.Popen[bytes] | None = None
    try:
        for i in range(2):
            home = tmp / f"replica{i}"
            home.mkdir()
            replicas.append(
                Running(
                    image_run(replica, bundle, home, duration_s(replica["stop_grace_period"])),
                    home,
                    home / "service.log",
                )
            )
        for r in replicas:
            r.wait_healthy(duration_s(replica["healthcheck"]["start_period"]))
        port = free_port()
        env = {k: str(v) for k, v in lb["environment"].items()}
        env.update(
            DAE_LB_LISTEN=f"127.0.0.1:{port}",
            DAE_LB_RESOLVER="",
            DAE_LB_UPSTREAM_SERVERS=local_upstreams(env["DAE_LB_UPSTREAM_SERVERS"], [r.run.port for r in replicas]),
        )
        conf_d = tmp / "conf.d"
        conf_d.mkdir()
        rendered = conf_d / TEMPLATE.name.removesuffix(".template")
        rendered.write_text(envsubst(TEMPLATE.read_text(), env))
        main = tmp / "nginx.conf"
        main.write_text(_main_conf(tmp, rendered))
        check = subprocess.run(
            [str(nginx_bin), "-t", "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(main)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert check.returncode == 0, check.stderr + rendered.read_text()
        nginx = subprocess.Popen(
            [str(nginx_bin), "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(main), "-g", "daemon off;"]
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert nginx.poll() is None and time.monotonic() < deadline, (tmp / "error.log").read_text()
            time.sleep(0.1)
        (tmp / "access.log").write_text("")  # count only what the tests send
        yield Balancer(url, tmp / "access.log", replicas)
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        for r in replicas:
            r.stop()


def test_requests_are_spread_over_both_replicas(balancer: Balancer, digit_png: bytes) -> None:
    with httpx.Client(base_url=balancer.url, timeout=30) as client:
        for _ in range(8):
            r = client.post("/encode", content=digit_png, headers={"Content-Type": "image/png"})
            assert r.status_code == 200, r.text
    used = {addr for line in balancer.upstreams() for addr in line.split(", ")}
    assert used == {f"127.0.0.1:{r.run.port}" for r in balancer.replicas}


def test_request_id_is_kept_or_minted(balancer: Balancer) -> None:
    with httpx.Client(base_url=balancer.url, timeout=10) as client:
        mine = client.get("/v2/health/live", headers={"X-Request-ID": "trace-42"})
        minted = client.get("/v2/health/live")
    assert mine.headers["x-request-id"] == "trace-42"
    assert re.fullmatch(r"[0-9a-f]{32}", minted.headers["x-request-id"])  # nginx's $request_id


def test_oversized_body_gets_the_services_json_413(balancer: Balancer) -> None:
    limit = int(balancer.replicas[0].run.env["DAE_MAX_BODY_BYTES"])
    with httpx.Client(base_url=balancer.url, timeout=30) as client:
        r = client.post("/encode", content=b"\0" * (limit + 1), headers={"Content-Type": "image/png"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"  # the service's error shape, not nginx's HTML page


def test_traffic_moves_on_when_a_replica_stops(balancer: Balancer, digit_png: bytes) -> None:
    """SIGTERM one replica (as `docker compose up --scale` down would): every request still succeeds."""
    gone, kept = balancer.replicas
    gone.stop()
    with httpx.Client(base_url=balancer.url, timeout=30) as client:
        for i in range(6):
            r = client.post(
                "/encode", content=digit_png, headers={"Content-Type": "image/png", "X-Request-ID": f"failover-{i}"}
            )
            assert r.status_code == 200, r.text
        assert client.get("/v2/health/ready", headers={"X-Request-ID": "failover-ready"}).status_code == 200
    deadline = time.monotonic() + 5  # nginx logs a request just after answering it
    while len(balancer.upstreams("failover-")) < 7 and time.monotonic() < deadline:
        time.sleep(0.05)
    last = balancer.upstreams("failover-")
    assert len(last) == 7
    # Some requests first hit the stopped replica (connection refused) and were retried on the other one.
    assert all(line.split(", ")[-1] == f"127.0.0.1:{kept.run.port}" for line in last)
