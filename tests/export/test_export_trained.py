"""The trainer -> exporter contract on checkpoints written by the real trainer (``training.train.fit``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from export.bundle import export_bundle
from tests.export.bundle_fixtures import one_thread
from training.checkpoint import read_checkpoint
from training.config import Variant
from training.train import TrainConfig, fit


@pytest.mark.parametrize(
    ("data", "variant"), [("mnist", "class-aware"), ("synthetic-lit", "intrinsic")], ids=["mnist", "synthetic-lit"]
)
def test_trainer_checkpoint_exports_with_its_own_provenance(
    tmp_path: Path, mnist_dir: Path, data: Literal["mnist", "synthetic-lit"], variant: Variant
) -> None:
    cfg = TrainConfig(
        data=data,
        data_dir=str(mnist_dir) if data == "mnist" else None,
        variant=variant,
        image_size=32,
        ndf=8,
        ngf=8,
        limit=64,
        test_limit=32,
        max_steps=3,
        batch_size=16,
        seed=5,
        out=str(tmp_path / "run"),
        progress=False,
        command="python -m training fit (test)",
    )
    with one_thread():
        run = fit(cfg)
        lines: list[str] = []
        # No --data-dir: the real-image set is found from the checkpoint's own train_config.
        man = export_bundle(run / "last.pt", tmp_path / "bundle", progress=lines.append)
    state = read_checkpoint(run / "last.pt")
    prov = man.provenance
    assert prov.data == f"{data} (first 64 training images)"
    assert (prov.steps, prov.epochs, prov.seed) == (3, state["epoch"], 5)
    assert prov.train_command == "python -m training fit (test)"
    assert prov.metrics and prov.metrics == {k: float(v) for k, v in state["metrics"].items()}
    assert any(f"real inputs: 64 images of the {data} test split" in line for line in lines)
    assert any(line.startswith("[verify] parity ok") for line in lines)
