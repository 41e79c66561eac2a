"""Kubernetes manifests (deploy/k8s): rendered, validated, and their contract with the service checked.

    .venv/bin/python -m pytest tests/deploy/test_k8s.py -q
    scripts/k8s_check.sh        # installs kubernetes-validate, runs this strictly (make docker-check runs it)

Rendering is scripts/k8s_render.py (the kustomize subset these files use; scripts/k8s_check.sh compares it with
`kubectl kustomize` wherever kubectl exists, and so does test_python_renderer_matches_kubectl here).
kubernetes-validate comes from .venv-k8s (or DAE_K8S_VALIDATE_BIN): missing, its tests skip, or fail under
DAE_DEPLOY_STRICT=1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .conftest import find_tool, require

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
RENDER = REPO / "scripts" / "k8s_render.py"
TARGETS = ("base", "overlays/cpu", "overlays/gpu", "monitoring", "kserve", "examples/image-bundle")
Doc = dict[str, Any]


def render(target: str) -> list[Doc]:
    out = subprocess.run(
        [sys.executable, str(RENDER), "render", str(K8S / target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    return {t: render(t) for t in TARGETS}


def one(docs: list[Doc], kind: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, (kind, [d["kind"] for d in docs])
    return found[0]


def env_of(container: Doc) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container.get("env", [])}


@pytest.fixture(scope="session")
def kvalidate_bin() -> Path:
    return require(
        find_tool("DAE_K8S_VALIDATE_BIN", "kubernetes-validate", REPO / ".venv-k8s" / "bin"), "kubernetes-validate"
    )


def validate(binary: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "--strict", *map(str, files)], capture_output=True, text=True, timeout=120, check=False
    )


# -- validation -----------------------------------------------------------------------------------------------


def test_every_target_validates_strictly(kvalidate_bin: Path, tmp_path: Path) -> None:
    files = [K8S / "examples" / "models-pvc.yaml"]
    for t in TARGETS:
        name = t.replace("/", "-")
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump_all(render(t)))
        subprocess.run(
            [sys.executable, str(RENDER), "split", str(tmp_path / f"{name}.yaml"), str(tmp_path / name)],
            check=True,
            timeout=60,
        )
        files += [p for p in (tmp_path / name / "core.yaml", tmp_path / name / "pods.yaml") if p.stat().st_size]
    r = validate(kvalidate_bin, *files)
    assert r.returncode == 0, r.stdout + r.stderr
    passed = r.stdout.count(" passed for resource ")
    # base, cpu, gpu, image-bundle: 4 each; kserve's predictor as a Pod; the example claim and loader pod
    assert passed == 4 * 4 + 1 + 2, r.stdout
    # the custom resources against deploy/k8s/schemas, with the validator's own Python (it has jsonschema)
    kpy = kvalidate_bin.parent / "python"
    for name in ("kserve", "monitoring"):
        crds = tmp_path / name / "crds.yaml"
        c = subprocess.run(
            [str(kpy), str(RENDER), "crds", str(crds)], capture_output=True, text=True, timeout=60, check=False
        )
        assert c.returncode == 0 and "every custom resource matches" in c.stdout, c.stdout + c.stderr


def test_validation_really_rejects(kvalidate_bin: Path, tmp_path: Path, rendered: dict[str, list[Doc]]) -> None:
    deployment = one(rendered["overlays/cpu"], "Deployment")
    bad = yaml.safe_load(yaml.safe_dump(deployment))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}  # a typo: unknown under --strict
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    r = validate(kvalidate_bin, tmp_path / "bad.yaml")
    assert r.returncode != 0 and "readinessProbes" in r.stdout + r.stderr
    isvc = yaml.safe_load(yaml.safe_dump(one(rendered["kserve"], "InferenceService")))  # a copy: the fixture is shared
    isvc["spec"]["predictor"]["containers"][0]["name"] = "dae"  # KServe wants kserve-container
    isvc["spec"]["predictor"]["minReplica"] = 1
    (tmp_path / "isvc.yaml").write_text(yaml.safe_dump(isvc))
    c = subprocess.run(
        [str(kvalidate_bin.parent / "python"), str(RENDER), "crds", str(tmp_path / "isvc.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert c.returncode == 1 and "kserve-container" in c.stdout and "minReplica" in c.stdout, c.stdout


def test_python_renderer_matches_kubectl(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (not on PyPI); scripts/k8s_check.sh compares wherever it is")
    for t in TARGETS:
        ours, theirs = tmp_path / "ours.yaml", tmp_path / "theirs.yaml"
        ours.write_text(yaml.safe_dump_all(render(t)))
        k = subprocess.run(
            [kubectl, "kustomize", str(K8S / t)], capture_output=True, text=True, timeout=60, check=False
        )
        assert k.returncode == 0, k.stderr
        theirs.write_text(k.stdout)
        same = subprocess.run(
            [sys.executable, str(RENDER), "same", str(ours), str(theirs)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert same.returncode == 0, (t, same.stdout)


def test_renderer_merge_rules(tmp_path: Path) -> None:
    """The strategic-merge rules the overlays rely on (without kubectl, these are what keeps the renderer honest)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("k8s_render", RENDER)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    base = {
        "containers": [{"name": "a", "env": [{"name": "X", "value": "1"}], "ports": [{"containerPort": 1}]}],
        "tolerations": [{"key": "t"}],
    }
    patch = {
        "containers": [{"name": "a", "env": [{"name": "X", "value": "2"}, {"name": "Y", "value": "3"}]}, {"name": "b"}],
        "tolerations": [{"key": "u"}],
    }
    out = mod.merge(base, patch)
    assert out["containers"][0]["env"] == [{"name": "X", "value": "2"}, {"name": "Y", "value": "3"}]
    assert out["containers"][0]["ports"] == [{"containerPort": 1}] and out["containers"][1] == {"name": "b"}
    assert out["tolerations"] == [{"key": "u"}]  # no merge key: replaced, as Kubernetes does
    assert mod.merge({"a": 1, "b": 2}, {"b": None}) == {"a": 1}
    assert mod._split_image("reg:5000/x/dae:gpu@sha256:ab") == ("reg:5000/x/dae", "gpu", "sha256:ab")
    (tmp_path / "kustomization.yaml").write_text("namePrefix: x-\n")
    with pytest.raises(mod.RenderError, match="does not implement"):
        mod.render(tmp_path)


# -- the contract with the service ---------------------------------------------------------------------------


def test_deployment_probes_shutdown_and_security(rendered: dict[str, list[Doc]]) -> None:
    for target in ("base", "overlays/cpu", "overlays/gpu"):
        dep = one(rendered[target], "Deployment")
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        port = next(p for p in c["ports"] if p["name"] == "http")
        env = env_of(c)
        assert env["DAE_PORT"] == str(port["containerPort"]) and env["DAE_HOST"] == "0.0.0.0"
        assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        startup = c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"]
        assert startup >= 120, "the warm-up needs time; liveness waits for the startup probe"
        # the grace period covers: preStop sleep, then DAE_SHUTDOWN_DELAY_S, then the drain
        pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        drain = float(env["DAE_DRAIN_TIMEOUT_S"]) + float(env.get("DAE_SHUTDOWN_DELAY_S", "0"))
        assert pod["terminationGracePeriodSeconds"] > pre_stop + drain + 5, (
            target,
            pod["terminationGracePeriodSeconds"],
        )
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
        sc = c["securityContext"]
        assert (
            sc["readOnlyRootFilesystem"]
            and not sc["allowPrivilegeEscalation"]
            and sc["capabilities"]["drop"] == ["ALL"]
        )
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
        assert mounts["/models"]["readOnly"] and env["DAE_BUNDLE"].startswith("/models/")
        gpu = c["resources"].get("limits", {}).get("nvidia.com/gpu")
        if target == "overlays/gpu":
            assert gpu == 1 and env["DAE_REQUIRE_CUDA"] == "true" and c["image"] == "dae-service:gpu"
            assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
        else:
            assert gpu is None and env.get("DAE_REQUIRE_CUDA", "false") == "false" and c["image"] == "dae-service:cpu"
        svc, pdb = one(rendered[target], "Service"), one(rendered[target], "PodDisruptionBudget")
        labels = dep["spec"]["template"]["metadata"]["labels"]
        for selector in (
            svc["spec"]["selector"],
            pdb["spec"]["selector"]["matchLabels"],
            dep["spec"]["selector"]["matchLabels"],
        ):
            assert selector.items() <= labels.items()
        assert svc["spec"]["ports"][0]["targetPort"] == "http"


def test_bundle_from_an_image_volume(rendered: dict[str, list[Doc]]) -> None:
    pod = one(rendered["examples/image-bundle"], "Deployment")["spec"]["template"]["spec"]
    (models,) = [v for v in pod["volumes"] if v["name"] == "models"]
    assert set(models) == {"name", "image"} and models["image"]["reference"]  # the claim is gone, not merged
    assert one(rendered["overlays/cpu"], "Deployment")["spec"]["template"]["spec"]["volumes"] != pod["volumes"]


def test_hpa_metric_is_what_the_adapter_makes_of_the_service_histogram(rendered: dict[str, list[Doc]]) -> None:
    from service.metrics import Metrics

    hpa = one(rendered["base"], "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["scaleTargetRef"]["name"] == "dae"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    values = yaml.safe_load((K8S / "monitoring" / "prometheus-adapter-values.yaml").read_text())
    (rule,) = values["rules"]["custom"]
    assert rule["name"]["as"] == metric["pods"]["metric"]["name"]
    series = re.match(r"^(\w+)\{", rule["seriesQuery"])
    assert series and series.group(1) == "dae_queue_time_seconds_count"
    families = {m.name for m in Metrics().registry.collect()}
    assert "dae_queue_time_seconds" in families  # the histogram the rule reads exists in the service
    for part in ("dae_queue_time_seconds_sum", "dae_queue_time_seconds_count", "<<.LabelMatchers>>", "<<.GroupBy>>"):
        assert part in rule["metricsQuery"]
    assert rule["resources"]["overrides"]["pod"]["resource"] == "pod"
    monitor = one(rendered["monitoring"], "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == one(rendered["base"], "Service")["spec"]["ports"][0]["name"]


def test_inference_service_is_a_raw_custom_predictor(rendered: dict[str, list[Doc]]) -> None:
    isvc = one(rendered["kserve"], "InferenceService")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    (c,) = isvc["spec"]["predictor"]["containers"]
    env = env_of(c)
    assert c["name"] == "kserve-container" and env["DAE_PORT"] == str(c["ports"][0]["containerPort"]) == "8080"
    assert env["DAE_BUNDLE"] == "/mnt/models" and env["STORAGE_URI"].startswith("pvc://")
    assert (
        c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready" and c["securityContext"]["readOnlyRootFilesystem"]
    )


def test_the_check_script_passes(kvalidate_bin: Path) -> None:
    """scripts/k8s_check.sh itself, end to end (its own pytest step off: that is this file)."""
    venv = REPO / ".venv-k8s"
    if kvalidate_bin.resolve() != (venv / "bin" / "kubernetes-validate").resolve():
        pytest.skip("kubernetes-validate is not the script's own (.venv-k8s): running it would install that")
    env = {**os.environ, "K8S_TESTS": "0", "PY": sys.executable}
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "k8s_check.sh")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0 and "k8s-check passed" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]


def test_the_check_script_is_part_of_docker_check() -> None:
    assert "scripts/k8s_check.sh" in (REPO / "scripts" / "docker_check.sh").read_text()


@pytest.mark.parametrize("target", ["overlays/cpu", "kserve"])
def test_container_environment_serves_its_probes(
    target: str, rendered: dict[str, list[Doc]], serve: Callable[..., Any], bundle: Path
) -> None:
    """The container's own environment (port and bundle path aside) runs a real service whose probe paths and
    OIP model name answer as the manifests expect."""
    docs = rendered[target]
    if target == "kserve":
        c = one(docs, "InferenceService")["spec"]["predictor"]["containers"][0]
    else:
        c = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {
        k.removeprefix("DAE_").lower(): v
        for k, v in env_of(c).items()
        if k.startswith("DAE_") and k not in ("DAE_HOST", "DAE_PORT", "DAE_BUNDLE")
    }
    env["intra_op_threads"] = "1"  # the tests share two cores
    server = serve(bundle, **env)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        r = httpx.get(server.url + c[probe]["httpGet"]["path"], timeout=10)
        assert r.status_code == 200 and r.json()["live"] is True, (probe, r.text)
    name = env.get("model_name")
    if name:
        assert httpx.get(f"{server.url}/v2/models/{name}/ready", timeout=10).status_code == 200
        assert httpx.get(f"{server.url}/v2/models/{name}-decoder", timeout=10).status_code == 200
