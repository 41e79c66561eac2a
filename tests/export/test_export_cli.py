"""``python -m export``: a real subprocess for the happy path, ``main()`` in-process for the failure paths."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bundle.manifest import load_manifest
from export.__main__ import main
from tests.export.bundle_fixtures import REPO

Exported = Callable[[str], tuple[Path, Path, list[str]]]


def test_cli_exports_and_verifies(exported: Exported, tmp_path: Path, mnist_dir: Path) -> None:
    ckpt = exported("class-aware")[0]
    out = tmp_path / "cli-bundle"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    argv = ["--checkpoint", str(ckpt), "--out", str(out), "--name", "digits", "--data-dir", str(mnist_dir)]
    done = subprocess.run(
        [sys.executable, "-m", "export", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[export] bundle ready" in done.stdout and "[verify] parity ok" in done.stdout
    assert "max abs diff" in done.stdout  # the parity table is printed
    assert done.stderr.strip() == "", done.stderr[-3000:]  # no warnings leak from torch or onnxruntime
    man = load_manifest(out)
    assert man.name == "digits" and man.variant == "class-aware"
    assert man.provenance.export_command == "python -m export " + " ".join(argv)

    verified = subprocess.run(
        [sys.executable, "-m", "export", "verify", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr[-3000:]
    assert f"[verify] {out}: ok" in verified.stdout


def test_cli_verify_reports_a_tampered_file(
    bundle_copy: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = bundle_copy("autoencoder")
    with (bundle / "texture.onnx").open("ab") as f:
        f.write(b"\0")
    assert main(["verify", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: graph 'texture': checksum mismatch for texture.onnx"), err


def test_cli_verify_with_checkpoint_runs_parity(
    exported: Exported, mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, bundle, _ = exported("autoencoder")
    assert main(["verify", str(bundle), "--checkpoint", str(ckpt), "--data-dir", str(mnist_dir)]) == 0
    out = capsys.readouterr().out
    assert "batch-vs-single" in out and "[verify] parity ok" in out


def test_cli_errors_exit_nonzero_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "b")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["verify", str(tmp_path)]) == 1
    assert "no manifest.json in bundle" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse: missing --out
        main(["--checkpoint", "x.pt"])
    assert e.value.code == 2
    assert "--out" in capsys.readouterr().err
