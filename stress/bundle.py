"""The bundle a stress run serves: ``--bundle`` if given, else models/mnist if committed, else a tiny
random-weight DAE exported once into the work folder (needs the ``train`` extra: torch + onnx).

Figures from a tiny bundle measure the service's machinery (admission, batching, memory), not the model.
"""

from __future__ import annotations

from pathlib import Path

from harness.server import REPO

DEFAULT = REPO / "models" / "mnist"


def tiny_bundle(work: Path) -> Path:
    """Export (once) a 32x32 single-channel DAE with random weights into ``work/tiny-dae``."""
    bundle = work / "tiny-dae" / "bundle"
    if (bundle / "manifest.json").is_file():
        return bundle
    import torch

    from export.bundle import export_bundle
    from training.checkpoint import save_checkpoint
    from training.config import ModelConfig
    from training.model import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(image_size=32, ndf=8, ngf=8, zdim=16, shape_dim=8, appearance_dim=4, variant="dae")
    ckpt = work / "tiny-dae" / "last.pt"
    save_checkpoint(ckpt, build_model(cfg), cfg, train_config={"tiny": True})
    export_bundle(ckpt, bundle, name="tiny-dae", verify=False, progress=None)
    return bundle


def choose(bundle: Path | None, work: Path) -> Path:
    if bundle is not None:
        return bundle
    if (DEFAULT / "manifest.json").is_file():
        return DEFAULT
    return tiny_bundle(work)
