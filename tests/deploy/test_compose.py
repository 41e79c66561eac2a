"""docker-compose.yml, validated by the real compose binary (`docker compose config`) for every deployment.

    .venv/bin/python -m pytest tests/deploy/test_compose.py -q     (tools: make docker-check)

Besides "it parses", each test pins one promise docs/deploy.md makes: the GPU is reserved, the CPU path has
no GPU anywhere, the bundle is read-only, SIGTERM's drain fits in the grace period, every DAE_* variable is a
real setting of the service, and the scaled profile puts replicas behind the load balancer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings

from .conftest import COMPOSE_FILE, COMPOSE_TARGETS, REPO, compose_env, duration_s

Config = Callable[..., dict[str, Any]]
SERVICE_NAMES = ("dae", "dae-cpu", "dae-replica", "dae-replica-cpu")
GPU_SERVICES = {"dae", "dae-replica", "train"}
TARGET_SERVICES = {
    "gpu": {"dae"},
    "cpu": {"dae-cpu"},
    "scaled": {"lb", "dae-replica"},
    "scaled-cpu": {"lb-cpu", "dae-replica-cpu"},
    "train": {"train"},
    "train-cpu": {"train-cpu"},
}


def _service(config: Config, name: str, **env: str) -> dict[str, Any]:
    label = next(label for label, names in TARGET_SERVICES.items() if name in names)
    service: dict[str, Any] = config(label, **env)["services"][name]
    return service


def _gpu_devices(svc: dict[str, Any]) -> list[dict[str, Any]]:
    return ((svc.get("deploy") or {}).get("resources") or {}).get("reservations", {}).get("devices") or []


@pytest.mark.parametrize("label", list(COMPOSE_TARGETS))
def test_each_target_resolves_to_exactly_its_services(compose_config: Config, label: str) -> None:
    assert set(compose_config(label)["services"]) == TARGET_SERVICES[label]


def test_docker_cli_plugin_validates_too(compose_bin: Path, tmp_path: Path) -> None:
    """`docker compose config` through the docker client, with the PyPI binary installed as its CLI plugin."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client here; the plugin binary itself is checked by the other tests")
    plugins = tmp_path / "cli-plugins"
    plugins.mkdir()
    (plugins / "docker-compose").symlink_to(compose_bin)
    for label, targets in COMPOSE_TARGETS.items():
        cmd = [docker, "compose", "-f", str(COMPOSE_FILE), "config", "-q", *targets]
        proc = subprocess.run(
            cmd, cwd=REPO, env=compose_env(tmp_path), capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, f"docker compose config ({label}) failed: {proc.stderr}"


@pytest.mark.parametrize("name", sorted(GPU_SERVICES))
def test_gpu_services_reserve_an_nvidia_gpu(compose_config: Config, name: str) -> None:
    devices = _gpu_devices(_service(compose_config, name))
    assert len(devices) == 1
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    # DAE_GPU_IDS picks the card: the knob docs/deploy.md gives for a multi-GPU host.
    assert _gpu_devices(_service(compose_config, name, DAE_GPU_IDS="3"))[0]["device_ids"] == ["3"]


@pytest.mark.parametrize("name", ["dae-cpu", "dae-replica-cpu", "train-cpu"])
def test_cpu_services_need_no_gpu(compose_config: Config, name: str) -> None:
    svc = _service(compose_config, name)
    assert _gpu_devices(svc) == []
    if name != "train-cpu":
        assert svc["build"]["args"]["ORT_EXTRA"] == "cpu"
        assert not svc["build"]["args"]["BASE_IMAGE"].startswith("nvidia/")
        assert svc["environment"]["DAE_REQUIRE_CUDA"] == "false"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_contract(compose_config: Config, name: str) -> None:
    svc = _service(compose_config, name)
    env = svc["environment"]
    # The bundle is mounted read-only where DAE_BUNDLE points, from DAE_BUNDLE_DIR (default models/mnist).
    (mount,) = [v for v in svc["volumes"] if v["target"] == env["DAE_BUNDLE"]]
    assert mount["read_only"] is True
    assert Path(mount["source"]) == REPO / "models" / "mnist"
    moved = _service(compose_config, name, DAE_BUNDLE_DIR="/srv/bundles/v7")
    assert moved["volumes"][0]["source"] == "/srv/bundles/v7"
    assert svc["read_only"] is True  # root filesystem too: the service writes nothing
    assert svc["restart"] == "unless-stopped"
    assert svc["healthcheck"]["test"] == ["CMD", "python", "/opt/dae/healthcheck.py"]
    assert svc["build"]["dockerfile"] == "docker/Dockerfile"
    assert svc["build"]["args"]["ORT_EXTRA"] in ("cpu", "gpu")
    # Draining must finish before Docker's SIGKILL: grace > shutdown delay + drain timeout.
    grace = duration_s(svc["stop_grace_period"])
    assert grace > float(env["DAE_SHUTDOWN_DELAY_S"]) + float(env["DAE_DRAIN_TIMEOUT_S"])
    assert env["DAE_HOST"] == "0.0.0.0"  # reachable from outside the container


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_every_dae_variable_is_a_real_setting(compose_config: Config, name: str) -> None:
    """A typo in an env name is silently ignored by pydantic-settings (extra='ignore'); catch it here."""
    env = _service(compose_config, name, DAE_AUTH_TOKEN="s3cret")["environment"]
    fields = set(Settings.model_fields)
    unknown = [k for k in env if k.startswith("DAE_") and k.removeprefix("DAE_").lower() not in fields]
    assert unknown == []
    # And the values are valid: the service's own Settings accepts them.
    values = {k.removeprefix("DAE_").lower(): v for k, v in env.items() if v is not None}
    settings = Settings(**values)
    assert settings.auth_token is not None and settings.auth_token.get_secret_value() == "s3cret"


def test_auth_token_is_absent_unless_set(compose_config: Config) -> None:
    env = _service(compose_config, "dae")["environment"]
    assert env.get("DAE_AUTH_TOKEN") is None  # compose leaves it unset in the container, not ""


def test_settings_flow_from_the_shell(compose_config: Config) -> None:
    env = _service(compose_config, "dae", DAE_MAX_BATCH="128", DAE_DEADLINE_S="3")["environment"]
    assert (env["DAE_MAX_BATCH"], env["DAE_DEADLINE_S"]) == ("128", "3")


def test_only_the_single_process_services_publish_a_port(compose_config: Config) -> None:
    for label in ("gpu", "cpu", "scaled", "scaled-cpu"):
        for name, svc in compose_config(label)["services"].items():
            published = [p["published"] for p in svc.get("ports", [])]
            assert published == (["8000"] if name in ("dae", "dae-cpu", "lb", "lb-cpu") else []), name


@pytest.mark.parametrize(
    ("label", "lb", "replica"), [("scaled", "lb", "dae-replica"), ("scaled-cpu", "lb-cpu", "dae-replica-cpu")]
)
def test_scaled_profile(compose_config: Config, label: str, lb: str, replica: str) -> None:
    services = compose_config(label)["services"]
    assert services[replica]["deploy"]["replicas"] == 2
    assert compose_config(label, DAE_REPLICAS="5")["services"][replica]["deploy"]["replicas"] == 5
    # nginx waits for healthy replicas and reaches all of them through one DNS alias.
    assert services[lb]["depends_on"][replica]["condition"] == "service_healthy"
    assert "dae-upstream" in services[replica]["networks"]["default"]["aliases"]
    assert "dae-upstream:8000 resolve" in services[lb]["environment"]["DAE_LB_UPSTREAM_SERVERS"]
    (template,) = services[lb]["volumes"]
    assert template["source"] == str(REPO / "deploy" / "nginx" / "dae.conf.template")
    assert template["target"].startswith("/etc/nginx/templates/") and template["read_only"] is True
    # A replica keeps answering 503 for a moment after SIGTERM so nginx moves on before its port closes.
    assert float(services[replica]["environment"]["DAE_SHUTDOWN_DELAY_S"]) > 0
    # nginx gives up later than the service's own deadline, so the client sees the service's 504.
    assert duration_s(services[lb]["environment"]["DAE_LB_READ_TIMEOUT"]) > float(
        services[replica]["environment"]["DAE_DEADLINE_S"]
    )


def test_multi_gpu_override_pins_one_card_per_replica_service(compose_bin: Path, tmp_path: Path) -> None:
    """deploy/compose.multi-gpu.yml, the recipe docs/deploy.md gives for outgrowing one GPU."""
    cmd = [
        str(compose_bin),
        "-f",
        str(COMPOSE_FILE),
        "-f",
        str(REPO / "deploy" / "compose.multi-gpu.yml"),
        "config",
        "--format",
        "json",
        "lb",
        "dae-replica-gpu1",
    ]
    proc = subprocess.run(
        cmd, cwd=REPO, env=compose_env(tmp_path), capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    services = json.loads(proc.stdout)["services"]
    assert set(services) == {"lb", "dae-replica", "dae-replica-gpu1"}
    cards = [_gpu_devices(services[n])[0]["device_ids"] for n in ("dae-replica", "dae-replica-gpu1")]
    assert cards == [["0"], ["1"]]
    for name in ("dae-replica", "dae-replica-gpu1"):
        assert "dae-upstream" in services[name]["networks"]["default"]["aliases"]
        assert services[name]["volumes"][0]["read_only"] is True
