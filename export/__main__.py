"""``python -m export``: checkpoint -> verified ONNX bundle, and re-verification of a bundle on disk.

    python -m export --checkpoint runs/dae/last.pt --out models/mnist --data-dir data/mnist
    python -m export --checkpoint runs/dae/last.pt --out /tmp/b --name mnist-dae --opset 18 --no-verify
    python -m export verify models/mnist                                   # checksums, checker, I/O, header
    python -m export verify models/mnist --checkpoint runs/dae/last.pt --data-dir data/mnist   # + parity

Export verifies by default (the ``verify`` stages plus parity at batch 1, 7 and 64 on random and real
images; real images need the training data: ``--data-dir`` or the checkpoint's recorded ``data_dir``).
Exit status: 0 ok, 1 the bundle or export failed (the message says which stage and what disagrees),
2 bad command line.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from bundle.manifest import BundleError
from export.errors import ExportError


def _export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a checkpoint to a verified ONNX bundle (subcommand `verify DIR` re-verifies one).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="RUN/last.pt written by the trainer")
    p.add_argument("--out", type=Path, required=True, help="bundle folder (created; bundle files replaced)")
    p.add_argument("--name", default=None, help="model name in the manifest (default: the --out folder name)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="training data for real-image parity (default: the checkpoint's data_dir)",
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 16: GridSample)")
    p.add_argument("--no-verify", action="store_true", help="skip verification and parity (not recommended)")
    p.add_argument(
        "--metrics",
        type=Path,
        default=None,
        help="JSON of evaluation metrics (python -m training evaluate --out) to record in the manifest",
    )
    return p


def _verify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m export verify",
        description="Verify a bundle folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("bundle", type=Path, help="folder holding manifest.json")
    p.add_argument("--checkpoint", type=Path, default=None, help="also check parity against this checkpoint")
    p.add_argument("--data-dir", type=Path, default=None, help="training data for real-image parity")
    return p


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list[:1] == ["verify"]:
            from export.verify import verify_bundle

            v = _verify_parser().parse_args(args_list[1:])
            verify_bundle(v.bundle, checkpoint=v.checkpoint, data_dir=v.data_dir)
            print(f"[verify] {v.bundle}: ok")
            return 0
        from export.bundle import export_bundle

        a = _export_parser().parse_args(args_list)
        metrics = None
        if a.metrics is not None:
            try:
                metrics = json.loads(a.metrics.read_text())
            except (OSError, ValueError) as e:
                raise ExportError(f"--metrics {a.metrics}: cannot read a JSON object of metrics: {e}") from e
            if isinstance(metrics, dict) and isinstance(metrics.get("metrics"), dict):
                metrics = metrics["metrics"]  # the report of `python -m training evaluate --out`
            if not isinstance(metrics, dict):
                raise ExportError(f"--metrics {a.metrics}: expected a JSON object of metric names to numbers")
        export_bundle(
            a.checkpoint,
            a.out,
            name=a.name,
            opset=a.opset,
            verify=not a.no_verify,
            data_dir=a.data_dir,
            command=shlex.join(["python", "-m", "export", *args_list]),
            metrics=metrics,
        )
        return 0
    except (ExportError, BundleError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
