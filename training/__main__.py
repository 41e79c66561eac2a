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

from training.options import add_arguments, from_namespace


def _fit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("fit", help="train a model", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(p)  # one option per TrainConfig field (training/options.py)
    p.add_argument("--dry-run", action="store_true", help="one step on a few images, to check the set-up")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m training", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    dry: dict[str, object] = {}
    if args.dry_run:
        dry = {"max_steps": 1, "limit": args.limit or 2 * args.batch_size, "test_limit": 16, "epochs": 1}
    from training.data import DataError
    from training.train import fit

    try:
        cfg = from_namespace(args, command="python -m training " + shlex.join(argv), **dry)
        run = fit(cfg)
    except (DataError, ValueError, FileNotFoundError) as e:  # user errors: a message, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {run / 'last.pt'}, {run / 'metrics.jsonl'} and {run / 'samples'}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
