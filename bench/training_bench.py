"""Training speed: our trainer's step vs a straightforward port of the authors' step, interleaved.

    python -m bench.training_bench --sizes 32 64 --batch 64

Both sides run full optimiser steps (forward, loss, backward, Adam) on the same random batch, with the same
nets and thread count, in alternating slices (see :mod:`bench.timing`). Data loading is excluded: it is the
same for both and would only add noise.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import torch

from bench.release_step import ReleaseIntegrator, ReleaseStep, our_step
from bench.timing import DEFAULT_BUDGET, Budget, interleaved, median
from training.config import WarpConstants
from training.warp import integrate


@dataclass(frozen=True)
class TrainingRow:
    image_size: int
    batch: int
    ours_images_per_s: float
    release_images_per_s: float
    ours_step_ms: float
    release_step_ms: float
    steps_timed: int
    integrator_max_abs_diff: float  # release transposed-conv integrator vs our cumsum, same increments

    @property
    def speedup(self) -> float:
        return self.ours_images_per_s / self.release_images_per_s


def integrator_agreement(size: int, batch: int = 4) -> float:
    """Max |release integrator - cumsum| on random increments (after the same scale, offset and clamp)."""
    c = WarpConstants()
    inc = torch.rand(batch, 2, size, size, generator=torch.Generator().manual_seed(0))
    ours = integrate(inc, c)
    theirs = torch.clamp(ReleaseIntegrator(size)(inc * (c.increment_scale / size)) - c.offset, -c.clamp, c.clamp)
    return float((ours - theirs).abs().max())


def bench_training(
    sizes: tuple[int, ...] = (32, 64),
    batch: int = 64,
    budget: Budget = DEFAULT_BUDGET,
    threads: int | None = None,
) -> list[TrainingRow]:
    """One row per image size; ``threads`` sets torch's intra-op threads (default: leave torch's choice)."""
    if threads:
        torch.set_num_threads(threads)
    rows = []
    for size in sizes:
        torch.manual_seed(0)
        x = torch.rand(batch, 1, size, size)
        ours = our_step(size)
        release = ReleaseStep(size)
        times = interleaved({"ours": partial(ours, x), "release": partial(release, x)}, budget)
        t_ours, t_rel = median(times["ours"]), median(times["release"])
        rows.append(
            TrainingRow(
                image_size=size,
                batch=batch,
                ours_images_per_s=batch / t_ours,
                release_images_per_s=batch / t_rel,
                ours_step_ms=t_ours * 1e3,
                release_step_ms=t_rel * 1e3,
                steps_timed=min(len(times["ours"]), len(times["release"])),
                integrator_max_abs_diff=integrator_agreement(size),
            )
        )
    return rows


def to_json(rows: list[TrainingRow]) -> list[dict[str, Any]]:
    return [asdict(r) | {"speedup": r.speedup} for r in rows]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64], help="image sizes (default: 32 64)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default: 64, the trainer's)")
    p.add_argument("--rounds", type=int, default=4, help="alternating slices per side (default: 4)")
    p.add_argument("--slice-s", type=float, default=2.0, help="seconds per slice (default: 2.0)")
    args = p.parse_args(argv)
    rows = bench_training(tuple(args.sizes), args.batch, Budget(args.rounds, args.slice_s, 2))
    print(json.dumps(to_json(rows), indent=2))


if __name__ == "__main__":
    main()
