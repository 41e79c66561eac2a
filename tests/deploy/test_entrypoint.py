"""The image's exact entrypoint and environment, run outside Docker against the bundled model.

    .venv/bin/python -m pytest tests/deploy/test_entrypoint.py -q

The command is the Dockerfile's ENTRYPOINT, the environment the Dockerfile's ENV (with compose's build args)
overlaid with compose's `environment:`, and readiness is judged by the image's own HEALTHCHECK command. What
cannot be the same outside a container is listed in tests/deploy/procs.py.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import duration_s
from .procs import Running, image_run


def _service(compose_config: Callable[..., dict[str, Any]], label: str, name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose_config(label)["services"][name]
    return service


@pytest.fixture(scope="module")
def cpu_container(
    compose_config: Callable[..., dict[str, Any]], bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    svc = _service(compose_config, "cpu", "dae-cpu")
    tmp = tmp_path_factory.mktemp("dae-cpu")
    run = image_run(svc, bundle, tmp, duration_s(svc["stop_grace_period"]))
    running = Running(run, tmp, tmp / "service.log")
    try:
        running.wait_healthy(duration_s(svc["healthcheck"]["start_period"]))
        yield running
    finally:
        running.stop()


def test_image_command_is_the_service(cpu_container: Running) -> None:
    assert cpu_container.run.command[1:] == ["-m", "service"]
    assert cpu_container.run.env["DAE_REQUIRE_CUDA"] == "false"
    assert cpu_container.run.env["DAE_PROVIDERS"] == "CPUExecutionProvider"


def test_ready_and_live(cpu_container: Running) -> None:
    with httpx.Client(base_url=cpu_container.run.url, timeout=10) as client:
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/health/ready").status_code == 200


def test_one_request_on_a_real_digit(cpu_container: Running, bundle: Path, digit_png: bytes) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    sizes = {lat["name"]: lat["size"] for lat in manifest["latents"]}
    with httpx.Client(base_url=cpu_container.run.url, timeout=30) as client:
        r = client.post("/encode", content=digit_png, headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    (item,) = r.json()["items"]
    assert len(item["appearance"]) == sizes["appearance"]
    assert len(item["shape"]) == sizes["shape"]
    assert all(isinstance(v, float) for v in item["appearance"])


def test_metadata_reports_the_cpu_provider(cpu_container: Running, bundle: Path) -> None:
    name = json.loads((bundle / "manifest.json").read_text())["name"]
    with httpx.Client(base_url=cpu_container.run.url, timeout=10) as client:
        r = client.get(f"/v2/models/{name}")
    assert r.status_code == 200, r.text
    assert "CUDAExecutionProvider" not in json.dumps(r.json())
    assert "CPUExecutionProvider" in json.dumps(r.json())


def test_sigterm_drains_and_exits_within_the_grace_period(
    compose_config: Callable[..., dict[str, Any]], bundle: Path, tmp_path: Path
) -> None:
    svc = _service(compose_config, "cpu", "dae-cpu")
    running = Running(
        image_run(svc, bundle, tmp_path, duration_s(svc["stop_grace_period"])), tmp_path, tmp_path / "service.log"
    )
    try:
        running.wait_healthy(duration_s(svc["healthcheck"]["start_period"]))
    finally:
        code = running.stop()  # raises if it outlives stop_grace_period, as Docker would SIGKILL it
    # 0, or uvicorn re-raising the SIGTERM it handled after its graceful shutdown (Docker shows 143); a process
    # killed by the signal's default action would also read -15, so the log must show the lifespan ran down.
    assert code in (0, -signal.SIGTERM), running.logs()
    assert "Application shutdown complete" in running.logs()
    assert not running.healthy()


def test_gpu_image_refuses_to_run_without_cuda(
    compose_config: Callable[..., dict[str, Any]], bundle: Path, tmp_path: Path
) -> None:
    """The GPU image sets DAE_REQUIRE_CUDA: on a host without CUDA it must fail, not silently use the CPU."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this host has CUDA: the GPU image's environment would legitimately start here")
    svc = _service(compose_config, "gpu", "dae")
    run = image_run(svc, bundle, tmp_path, duration_s(svc["stop_grace_period"]))
    assert run.env["DAE_REQUIRE_CUDA"] == "true"
    running = Running(run, tmp_path, tmp_path / "service.log")
    try:
        code = running.proc.wait(timeout=duration_s(svc["healthcheck"]["start_period"]))
    finally:
        running.stop()
    assert code != 0
    assert "CUDA" in running.logs()
