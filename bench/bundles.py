"""The models the benchmarks run: untrained DAEs exported with the project's own exporter.

Speed does not depend on the weights, only on the architecture, so the benchmark exports its own bundles
from freshly initialised models instead of depending on a trained one: the 32×32 MNIST-sized DAE (the
architecture of ``models/mnist``) and the 64×64 model of the design notes §3. The same checkpoint gives the
PyTorch eager side of every comparison, so both sides run exactly the same network.

    python -m bench.bundles --out build/bench/bundles     # writes dae32/ and dae64/ (+ their .pt files)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from training.checkpoint import load_model, save_checkpoint
from training.config import ModelConfig
from training.model import Model, build_model


def checkpoint_for(image_size: int, root: Path) -> Path:
    """An untrained DAE checkpoint at ``root/dae{N}.pt`` (seeded, so reruns write the same weights)."""
    path = root / f"dae{image_size}.pt"
    if not path.is_file():
        torch.manual_seed(0)
        cfg = ModelConfig(variant="dae", image_size=image_size)
        save_checkpoint(path, build_model(cfg), cfg, train_config={"data": "synthetic", "note": "untrained, bench"})
    return path


def bundle_for(image_size: int, root: Path) -> Path:
    """The exported bundle ``root/dae{N}/`` (exported once, reused while its checkpoint is unchanged)."""
    from export.bundle import export_bundle  # the exporter pulls in onnx; import only when exporting

    ckpt = checkpoint_for(image_size, root)
    out = root / f"dae{image_size}"
    if not (out / "manifest.json").is_file() or (out / "manifest.json").stat().st_mtime < ckpt.stat().st_mtime:
        # verify=False: parity is the exporter's own test suite's job; here it would only cost start-up time.
        export_bundle(ckpt, out, name=f"bench-dae{image_size}", verify=False, progress=None)
    return out


def eager_model(image_size: int, root: Path) -> Model:
    """The PyTorch model behind :func:`bundle_for`'s bundle, in eval mode."""
    model, _ = load_model(checkpoint_for(image_size, root))
    return model


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("build/bench/bundles"), help="(default: build/bench/bundles)")
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64], help="(default: 32 64)")
    args = p.parse_args(argv)
    for size in args.sizes:
        print(bundle_for(size, args.out))


if __name__ == "__main__":
    main()
