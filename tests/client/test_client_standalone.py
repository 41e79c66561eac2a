"""The client installs alone: with every server, runtime and training package blocked, ``client`` imports, its
CLI answers ``--help``, and it reaches nothing of ``service`` (see tests/structure for the static check)."""

from __future__ import annotations

from tests.blocked import run_blocked

SERVER_SIDE = {
    "fastapi",
    "starlette",
    "uvicorn",
    "onnxruntime",
    "onnx",
    "torch",
    "pydantic",
    "pydantic_settings",
    "prometheus_client",
    "matplotlib",
    "service",
    "training",
    "export",
    "bundle",
    "harness",
}


def test_client_imports_and_runs_its_cli_without_server_packages() -> None:
    code = """
import sys
import client
from client import AsyncClient, Client, Result, RetryPolicy
from client.__main__ import main
sys.argv = ["python -m client", "--help"]
try:
    main()
except SystemExit as e:
    assert e.code in (0, None), e.code
loaded = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
assert not loaded, loaded
print("client ok")
"""
    done = run_blocked(code, SERVER_SIDE)
    assert done.returncode == 0, done.stderr
    assert "client ok" in done.stdout
    assert "reconstruct" in done.stdout  # the --help text lists the subcommands


def test_the_blocker_really_blocks() -> None:
    done = run_blocked("import fastapi", {"fastapi"})
    assert done.returncode != 0 and "blocked by the test" in done.stderr
