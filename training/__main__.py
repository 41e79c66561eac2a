"""``python -m training {fit,evaluate,fetch-mnist}``.

    python -m training fetch-mnist --dest data/mnist
    python -m training fit --data mnist --data-dir data/mnist --image-size 32 --epochs 3 --out runs/dae
    python -m training evaluate --checkpoint runs/dae/last.pt --data mnist --data-dir data/mnist --out metrics.json
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from training.config import IMAGE_SIZES, VARIANTS, WARP_KINDS
from training.train import TrainConfig


def _fit_parser(sub: argparse._SubParsersAction) -> None:
    d = TrainConfig()
    p = sub.add_parser("fit", help="train a model", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=d.data, choices=("mnist", "folder", "synthetic", "synthetic-lit"))
    p.add_argument("--data-dir", default=d.data_dir, help="MNIST IDX files, or the image folder")
    p.add_argument("--image-size", type=int, default=d.image_size, choices=IMAGE_SIZES)
    p.add_argument("--channels", type=int, default=d.channels, choices=(1, 3))
    p.add_argument("--variant", default=d.variant, choices=VARIANTS)
    p.add_argument("--warp", default=d.warp, choices=WARP_KINDS)
    p.add_argument("--norm", default=d.norm, choices=("instance", "batch"))
    p.add_argument("--appearance-dim", type=int, default=d.appearance_dim)
    p.add_argument("--shape-dim", type=int, default=d.shape_dim)
    p.add_argument("--shading-dim", type=int, default=d.shading_dim)
    p.add_argument("--zdim", type=int, default=d.zdim)
    p.add_argument("--ndf", type=int, default=d.ndf, help="encoder width")
    p.add_argument("--ngf", type=int, default=d.ngf, help="decoder width")
    p.add_argument("--increment-scale", type=float, default=d.increment_scale, help="increments = s·scale/N")
    p.add_argument("--grid-offset", type=float, default=d.grid_offset, help="subtracted after the cumsum")
    p.add_argument("--grid-clamp", type=float, default=d.grid_clamp, help="grid clamped to ±clamp")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=d.epochs)
    budget.add_argument("--max-steps", type=int, default=d.max_steps, help="stop after N optimiser steps")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="per process")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, choices=("auto", "cpu", "cuda"))
    p.add_argument("--out", default=d.out, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--limit", type=int, default=d.limit, help="use only the first N training images")
    p.add_argument("--test-limit", type=int, default=d.test_limit, help="test images for the per-epoch test loss")
    p.add_argument("--recon", default=d.recon, choices=("l1", "l2"))
    p.add_argument("--smooth-weight", type=float, default=d.smooth_weight, help="mean TV of the residual warp")
    p.add_argument("--bias-weight", type=float, default=d.bias_weight, help="squared batch-mean residual")
    p.add_argument("--shading-weight", type=float, default=d.shading_weight, help="intrinsic shading smoothness")
    p.add_argument("--class-weight", type=float, default=d.class_weight, help="class-aware cross-entropy")
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--dry-run", action="store_true", help="one step on a few images, to check the set-up")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    _fit_parser(sub)
    fetch = sub.add_parser("fetch-mnist", help="download and verify the four MNIST files")
    fetch.add_argument("--dest", required=True)
    sub.add_parser("evaluate", help="metrics of a checkpoint on a test split (see --help)", add_help=False)
    if argv and argv[0] == "evaluate":
        from training.evaluate import main as evaluate_main

        return evaluate_main(argv[1:])
    args = parser.parse_args(argv)
    if args.cmd == "fetch-mnist":
        from training.mnist import fetch_mnist

        fetch_mnist(Path(args.dest))
        return 0
    kwargs = {k: v for k, v in vars(args).items() if k not in ("cmd", "dry_run")}
    if args.dry_run:
        kwargs.update(max_steps=1, limit=kwargs.get("limit") or 2 * args.batch_size, test_limit=16, epochs=1)
    cfg = TrainConfig(**kwargs, command="python -m training " + shlex.join(argv))
    from training.data import DataError
    from training.train import fit

    try:
        run = fit(cfg)
    except (DataError, ValueError, FileNotFoundError) as e:  # user errors: a message, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {run / 'last.pt'}, {run / 'metrics.jsonl'} and {run / 'samples'}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
