"""``python -m reports``: train (or reuse), evaluate and draw every run, then write docs/results.md.

    make results                                                       # = the next line
    python -m reports --data-dir ../shared/data/mnist --out docs --runs runs/results
    python -m reports --data-dir DIR --out /tmp/r --runs /tmp/runs --quick   # the pipeline on tiny slices (~2 min)

Progress lines start with ``[reports]``; each training shows its own progress in ``RUN/metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from reports import page, pictures, plan, runner


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(
        prog="python -m reports", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-dir", required=True, help="MNIST IDX files (e.g. ../shared/data/mnist)")
    p.add_argument("--out", default="docs", help="results.md, results.json and figures/ go here (default: docs)")
    p.add_argument("--runs", default="runs/results", help="run directories (default: runs/results)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="default: cpu")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="only these seeds (default: each run's)")
    p.add_argument("--only", nargs="+", default=None, help="only these runs (by name)")
    p.add_argument("--quick", action="store_true", help="tiny slices, tiny nets, 6 steps each: a smoke test")
    p.add_argument(
        "--no-reuse",
        dest="reuse",
        action="store_false",
        help="retrain runs whose folder already holds a finished run of the same config",
    )
    p.add_argument(
        "--no-train",
        dest="train",
        action="store_false",
        help="report only runs already trained here; a seed without a finished run keeps the metrics the "
        "earlier results.json (in --out) recorded for the same run and config, its figures the files drawn then",
    )
    args = p.parse_args(args_list)
    t0 = time.perf_counter()
    todo = [r for r in plan.runs(args.quick) if args.only is None or r.name in args.only]
    plan.configure(
        todo,
        runs_dir=Path(args.runs),
        data_dir=args.data_dir,
        device=args.device,
        quick=args.quick,
        seeds=tuple(args.seeds) if args.seeds else None,
    )
    out = Path(args.out)
    recorded = runner.load_recorded(out / "results.json")
    runner.complete(
        todo,
        eval_limit=200 if args.quick else None,
        reuse=args.reuse,
        train_missing=args.train,
        recorded=recorded.get("runs", {}),
    )
    todo = [r for r in todo if r.metrics]
    # Earlier figures stay only beside recorded metrics (their runs' models are not here to redraw them).
    kept = recorded.get("figures", {}) if any(r.recorded for r in todo) else None
    figs = pictures.draw(todo, out / "figures", kept=kept)
    page.write(
        out,
        todo,
        figs,
        command="python -m reports " + shlex.join(args_list),
        quick=args.quick,
        total_s=time.perf_counter() - t0,
    )
    runner.say(f"wrote {out / 'results.md'} in {(time.perf_counter() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
