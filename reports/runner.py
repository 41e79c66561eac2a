"""Train a run's seeds (or reuse finished runs of the same config) and evaluate them, caching ``eval.json``."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from reports.plan import Run
from training.checkpoint import load_model
from training.data import build_dataset
from training.evaluate import METRICS_VERSION, evaluate
from training.options import TrainConfig
from training.train import fit

# Fields that cannot change what a run learns (or that a variant ignores: see _ignored).
_NEUTRAL = {"command", "progress", "log_every", "device", "out", "resume"}


def say(line: str) -> None:
    print(f"[reports] {line}", flush=True)


def _ignored(cfg: TrainConfig) -> set[str]:
    extra = {"epochs"} if cfg.max_steps is not None else set()
    if cfg.variant != "class-aware":
        extra.add("class_weight")
    if cfg.variant != "intrinsic":
        extra |= {"shading_weight", "shading_dim", "albedo_output", "shading_floor"}
    if cfg.variant == "autoencoder":  # no warp: the warm-up, the warp losses and the stage do not apply
        extra |= {
            "appearance_hold",
            "appearance_ramp",
            "appearance_dropout",
            "affine_stage",
            "smooth_weight",
            "bias_weight",
            "deformation_lr",
        }
    return _NEUTRAL | extra


def finished(cfg: TrainConfig) -> bool:
    """Whether ``cfg.out`` holds a run that finished training with exactly this config."""
    try:
        state = torch.load(Path(cfg.out) / "last.pt", map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError):
        return False
    ignore = _ignored(cfg)
    planned = {k: v for k, v in asdict(cfg).items() if k not in ignore}
    recorded = {k: v for k, v in state.get("train_config", {}).items() if k not in ignore}
    if planned != recorded:
        return False
    if cfg.max_steps is not None:
        return int(state["step"]) >= cfg.max_steps
    return int(state["epoch"]) >= cfg.epochs


def train(run: Run, seed: int, *, reuse: bool) -> Path:
    cfg = run.config(seed)
    out = Path(cfg.out)
    timing = out / "wall.json"
    if reuse and finished(cfg):
        run.wall_s[seed] = float(json.loads(timing.read_text())["wall_s"]) if timing.is_file() else float("nan")
        say(f"reusing {run.name} seed {seed}: {out}")
        return out
    say(f"training {run.name} seed {seed}: {cfg.command}")
    t0 = time.perf_counter()
    fit(cfg)
    run.wall_s[seed] = time.perf_counter() - t0
    timing.write_text(json.dumps({"wall_s": run.wall_s[seed]}) + "\n")
    return out


def test_split(cfg: TrainConfig, limit: int | None) -> Dataset[dict[str, Tensor]]:
    """The test split of a run's dataset, built as its training built it."""
    return build_dataset(
        cfg.data,
        split="test",
        image_size=cfg.image_size,
        channels=cfg.channels,
        data_dir=cfg.data_dir,
        limit=limit,
        seed=cfg.seed,
    )


def evaluate_run(run: Run, seed: int, *, eval_limit: int | None, reuse: bool) -> dict[str, float]:
    cfg = run.config(seed)
    path = Path(cfg.out) / "eval.json"
    ckpt = Path(cfg.out) / "last.pt"
    if reuse and path.is_file() and path.stat().st_mtime >= ckpt.stat().st_mtime:
        cached: dict[str, Any] = json.loads(path.read_text())
        if cached.get("limit") == eval_limit and cached.get("metrics_version") == METRICS_VERSION:
            return {k: float(v) for k, v in cached["metrics"].items()}
    model, _ = load_model(ckpt)
    test = test_split(cfg, eval_limit)
    t0 = time.perf_counter()
    metrics = evaluate(model, test)
    say(
        f"evaluated {run.name} seed {seed} in {time.perf_counter() - t0:.0f} s: "
        + " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if not k.startswith("swap_") or k == "swap_ratio")
    )
    record = {"limit": eval_limit, "metrics_version": METRICS_VERSION, "metrics": metrics}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return metrics


def load_recorded(path: Path) -> dict[str, Any]:
    """What an earlier ``python -m reports`` wrote to ``path`` (results.json: ``runs`` by name, ``figures``
    caption → file); {} if there is none."""
    if not path.is_file():
        return {}
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _recorded_seed(run: Run, seed: int, recorded: dict[str, Any]) -> tuple[dict[str, float], float] | None:
    """A seed's metrics and wall time as recorded for the same run with the same changes, or None. Only the
    config is compared: a run whose code or data generator changed must be retrained (``--only NAME``)."""
    rec = recorded.get(run.name)
    if rec is None or rec.get("changes") != json.loads(json.dumps(run.changes)):
        return None
    entry = rec.get("seeds", {}).get(str(seed), {})
    metrics = entry.get("metrics")
    if not metrics:
        return None
    wall = entry.get("wall_s")
    return {k: float(v) for k, v in metrics.items()}, float("nan") if wall is None else float(wall)


def complete(
    plan: list[Run],
    *,
    eval_limit: int | None,
    reuse: bool,
    train_missing: bool = True,
    recorded: dict[str, Any] | None = None,
) -> None:
    """Train (or reuse) and evaluate every seed. With ``train_missing=False`` a seed without a finished run of
    its config keeps its ``recorded`` metrics (an earlier results.json, same run name and changes) or else is
    left out (the tables then count fewer seeds)."""
    for run in plan:
        for seed in run.seeds:
            if not train_missing and not finished(run.config(seed)):
                kept = _recorded_seed(run, seed, recorded or {})
                if kept is None:
                    say(f"skipping {run.name} seed {seed}: no finished run of this config in {run.config(seed).out}")
                else:
                    run.metrics[seed], run.wall_s[seed] = kept
                    run.recorded.add(seed)
                    say(f"keeping {run.name} seed {seed}: metrics recorded earlier (no run of it here)")
                continue
            train(run, seed, reuse=reuse)
            run.metrics[seed] = evaluate_run(run, seed, eval_limit=eval_limit, reuse=reuse)
