"""The Dockerfiles: hadolint-clean, and built the way docs/deploy.md says (read statically; no engine here).

.venv/bin/python -m pytest tests/deploy/test_dockerfiles.py -q
"""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from pathlib import Path

import pytest

from . import dockerfile as df
from .conftest import REPO

DOCKERFILES = sorted(p for p in (REPO / "docker").glob("Dockerfile*") if not p.name.endswith(".dockerignore"))
SERVICE = REPO / "docker" / "Dockerfile"
TRAIN = REPO / "docker" / "Dockerfile.train"
CPU_ARGS = {"BASE_IMAGE": "ubuntu:24.04", "ORT_EXTRA": "cpu", "REQUIRE_CUDA": "false"}


def test_the_dockerfiles_exist() -> None:
    assert [p.name for p in DOCKERFILES] == ["Dockerfile", "Dockerfile.train"]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(hadolint_bin: Path, path: Path) -> None:
    # failure-threshold=info: any finding at all fails; deliberate exceptions are inline and explained.
    proc = subprocess.run(
        [str(hadolint_bin), "--failure-threshold", "info", "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_really_lints(hadolint_bin: Path, tmp_path: Path) -> None:
    """Guard against a hadolint that passes everything (wrong binary, ignored config)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get install curl\n")
    proc = subprocess.run(
        [str(hadolint_bin), "--no-color", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode != 0 and "DL3006" in proc.stdout  # untagged base image


@pytest.mark.parametrize(
    ("args", "base", "extra", "require_cuda"),
    [
        ({}, "nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04", "gpu", "true"),
        (CPU_ARGS, "ubuntu:24.04", "cpu", "false"),
    ],
    ids=["gpu", "cpu"],
)
def test_service_image_variants(args: dict[str, str], base: str, extra: str, require_cuda: str) -> None:
    stages = df.stages(SERVICE, args)
    final = stages[-1]
    assert df.root_image(stages) == base
    assert final.env["DAE_REQUIRE_CUDA"] == require_cuda
    build = next(s for s in stages if s.name == "build")
    assert any('serve "${ORT_EXTRA}"' in i.args for i in build.instructions if i.keyword == "RUN")
    script = REPO / "docker" / "requirements.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(REPO / "pyproject.toml"), "serve", extra],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    reqs = proc.stdout.split()
    assert any(r.startswith("onnxruntime-gpu" if extra == "gpu" else "onnxruntime>") for r in reqs)
    assert not any(r.startswith("torch") for r in reqs)
    assert any(r.startswith("fastapi") for r in reqs) and any(r.startswith("uvicorn") for r in reqs)
    if extra == "cpu":
        assert not any(r.startswith("onnxruntime-gpu") for r in reqs)


def test_gpu_base_is_cuda13_cudnn9_runtime() -> None:
    base = df.root_image(df.stages(SERVICE))
    repo, _, tag = base.partition(":")
    assert repo == "nvidia/cuda"
    version, flavour = tag.split("-", 1)
    assert version.split(".")[0] == "13"  # what the onnxruntime-gpu wheel on PyPI is built for
    assert flavour.startswith("cudnn-runtime-")  # cuDNN 9 ships in the CUDA 13 cudnn tags; no devel bloat


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_a_numeric_non_root_user(path: Path) -> None:
    user = df.final_stage(path).user
    assert user is not None
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dependencies_are_installed_before_the_code_is_copied(path: Path) -> None:
    for stage in df.stages(path):
        kinds = [i for i in stage.instructions if i.keyword in ("COPY", "RUN")]
        code = [
            n
            for n, i in enumerate(kinds)
            if i.keyword == "COPY" and i.args.split()[0].rstrip("/") in ("bundle", "service", "training", "export")
        ]
        deps = [n for n, i in enumerate(kinds) if i.keyword == "RUN" and "requirements.txt" in i.args]
        if code:
            assert deps and max(deps) < min(code), f"{path.name}/{stage.name}: code before dependencies"


def test_service_image_never_gets_torch() -> None:
    stages = df.stages(SERVICE)
    copied = {src.rstrip("/") for s in stages for src, _ in s.copies}
    assert "training" not in copied and "export" not in copied  # those import torch
    assert all("train" not in i.args for s in stages for i in s.instructions if i.keyword == "RUN")


def test_service_healthcheck_probes_readiness() -> None:
    stages = df.stages(SERVICE)
    final = stages[-1]
    assert final.command == ["python", "-m", "service"]
    assert final.healthcheck[0] == "python"
    script = df.host_path(final.healthcheck[1], stages, REPO)
    assert script == REPO / "docker" / "healthcheck.py"
    assert "/v2/health/ready" in script.read_text()


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerignore_admits_everything_copied(path: Path) -> None:
    """BuildKit reads <Dockerfile>.dockerignore; an allow-list missing a COPY source breaks the build."""
    ignore = path.with_name(path.name + ".dockerignore")
    patterns = [ln.strip() for ln in ignore.read_text().splitlines() if ln.strip() and not ln.startswith("#")]

    def included(rel: str) -> bool:
        keep = True
        for pat in patterns:
            negate = pat.startswith("!")
            pat = pat.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(rel, pat) or rel.startswith(pat + "/"):
                keep = negate
        return keep

    for stage in df.stages(path):
        for src, _ in stage.copies:
            assert (REPO / src).exists(), src
            assert included(src.rstrip("/")), f"{ignore.name} excludes {src}"
    assert not included(".venv/bin/python") and not included("runs/x/last.pt")


def test_dockerfile_reader_rejects_what_it_cannot_run(tmp_path: Path) -> None:
    shell_form = tmp_path / "Dockerfile"
    shell_form.write_text("FROM x:1\nENTRYPOINT python -m service\n")
    with pytest.raises(ValueError, match="exec"):
        df.stages(shell_form)
    dangling = tmp_path / "Dockerfile.2"
    dangling.write_text("FROM x:1\nRUN true \\\n")
    with pytest.raises(ValueError, match="continuation"):
        df.stages(dangling)
