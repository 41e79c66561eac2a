"""The reproducible comparison behind docs/results.md: train, evaluate, draw, write — one command.

Commands::

    make results                                                     # = the next line
    python -m training.results --data-dir ../shared/data/mnist --out docs
    python -m training.results --data-dir DIR --out /tmp/r --quick   # whole pipeline on tiny slices, ~1 min

What it does (progress lines on stdout, each prefixed ``[results]``):

1. training throughput (img/s, DAE, batch 64) at 32×32 and 64×64 on this machine;
2. trains, on the full MNIST training set with the same budget (epochs × batch size, seed 0) and the same
   total latent size (appearance 16 + shape 128 = 144 for every model; the plain autoencoder gets one
   144-d code): plain autoencoder, DAE, class-aware DAE, DAE with affine + integral warp;
   plus an intrinsic DAE on the synthetic-lit set (ground-truth albedo, shading and deformation);
3. evaluates each on its test split (:func:`training.evaluate.evaluate`);
4. writes ``OUT/results.md``, ``OUT/results.json`` and ``OUT/figures/*.png``. Runs go to ``--runs``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from training.checkpoint import load_model
from training.data import build_dataset
from training.evaluate import evaluate, forward
from training.train import TrainConfig, fit, measure_throughput

ALIGN_DIGIT = 3  # the class shown in the alignment figures
PAIRS = 4  # interpolation pairs per figure (same class, different writers)


@dataclass
class Run:
    """One trained model of the comparison."""

    name: str
    variant: str
    warp: str = "integral"
    data: str = "mnist"
    appearance_dim: int = TrainConfig.appearance_dim  # the published 16; *-app2 runs test the bottleneck
    cfg: TrainConfig | None = None
    wall_s: float = 0.0
    steps: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


def say(line: str) -> None:
    print(f"[results] {line}", flush=True)


def _cli_command(cfg: TrainConfig) -> str:
    """The `python -m training fit` line that reproduces ``cfg`` (only fields that differ from defaults)."""
    d = TrainConfig()
    parts = ["python", "-m", "training", "fit"]
    for name in ("data", "data_dir", "image_size", "variant", "warp", "appearance_dim", "shape_dim", "ndf", "ngf",
                 "epochs", "max_steps", "batch_size", "seed", "limit", "out"):
        value = getattr(cfg, name)
        if (value != getattr(d, name) or name in ("data", "variant", "out")) and value is not None:
            parts += ["--" + name.replace("_", "-"), str(value)]
    return shlex.join(parts)


def plan(args: argparse.Namespace) -> list[Run]:
    """The five runs, with equal budgets; ``--quick`` shrinks data, nets and steps but keeps the pipeline."""
    runs_dir = Path(args.runs)
    base = TrainConfig(data="mnist", data_dir=args.data_dir, image_size=args.image_size, epochs=args.epochs,
                       batch_size=64, seed=0, device=args.device, progress=False, log_every=100)
    if args.quick:
        base = replace(base, limit=256, test_limit=64, max_steps=4, batch_size=32, ndf=8, ngf=8, zdim=32,
                       epochs=1)
    runs = [Run("autoencoder", "autoencoder"), Run("dae", "dae"), Run("class-aware", "class-aware"),
            Run("dae-affine", "dae", warp="affine+integral"),
            # Same total latent (2 + 142 = 144): a short appearance code leaves shape to the warp.
            Run("dae-app2", "dae", appearance_dim=2), Run("class-aware-app2", "class-aware", appearance_dim=2),
            Run("intrinsic", "intrinsic", data="synthetic-lit")]
    total = base.appearance_dim + base.shape_dim
    for r in runs:
        data_dir = args.data_dir if r.data == "mnist" else None
        r.cfg = replace(base, variant=r.variant, warp=r.warp, data=r.data, data_dir=data_dir,
                        out=str(runs_dir / r.name), appearance_dim=r.appearance_dim,
                        shape_dim=total - r.appearance_dim)
        r.cfg = replace(r.cfg, command=_cli_command(r.cfg))
    return runs


def _reusable(run: Run) -> float | None:
    """Wall time of an earlier, finished run with exactly this training config (``--reuse``), else None."""
    assert run.cfg is not None
    out = Path(run.cfg.out)
    try:
        done = json.loads((out / "results_run.json").read_text())
        state = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError):
        return None
    # Weights of loss terms a variant does not have cannot change its training.
    ignore = {"command"} | ({"class_weight"} if run.variant != "class-aware" else set()) | (
        {"shading_weight"} if run.variant != "intrinsic" else set())
    planned = {k: v for k, v in asdict(run.cfg).items() if k not in ignore}
    recorded = {k: v for k, v in state.get("train_config", {}).items() if k not in ignore}
    return float(done["wall_s"]) if planned == recorded else None


def train_and_evaluate(run: Run, *, eval_limit: int | None, device: str, reuse: bool = False) -> None:
    assert run.cfg is not None
    earlier = _reusable(run) if reuse else None
    if earlier is not None:
        say(f"reusing {run.name} (same training config, trained in {earlier:.0f} s): {run.cfg.out}")
        run.wall_s, path = earlier, Path(run.cfg.out)
    else:
        say(f"training {run.name}: {run.cfg.command}")
        t0 = time.perf_counter()
        path = fit(run.cfg)
        run.wall_s = time.perf_counter() - t0
        (path / "results_run.json").write_text(json.dumps({"wall_s": run.wall_s}) + "\n")
    model, state = load_model(path / "last.pt")
    run.steps = int(state["step"])
    say(f"trained {run.name}: {run.steps} steps in {run.wall_s:.0f} s; evaluating")
    test = build_dataset(run.data, split="test", image_size=run.cfg.image_size, data_dir=run.cfg.data_dir,
                         limit=eval_limit, seed=run.cfg.seed)
    t0 = time.perf_counter()
    run.metrics = evaluate(model, test, device=device)
    say(f"evaluated {run.name} in {time.perf_counter() - t0:.0f} s: "
        + " ".join(f"{k}={v:.4g}" for k, v in run.metrics.items()))


def _test_batch(data: str, data_dir: str | None, image_size: int,
                n: int) -> tuple[torch.Tensor, torch.Tensor]:
    ds = build_dataset(data, split="test", image_size=image_size, data_dir=data_dir, limit=n)
    items = [ds[i] for i in range(len(ds))]  # type: ignore[arg-type]
    return torch.stack([it["image"] for it in items]), torch.stack([it["label"] for it in items])


def _pairs(labels: torch.Tensor, count: int) -> list[tuple[int, int]]:
    """``count`` pairs of different images of the same class, from different classes where possible."""
    out: list[tuple[int, int]] = []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten().tolist()
        if len(idx) >= 2:
            out.append((idx[0], idx[1]))
        if len(out) == count:
            break
    return out


def draw_figures(runs: list[Run], fig_dir: Path, *, data_dir: str | None, image_size: int) -> dict[str, str]:
    """All PNGs under ``fig_dir``; returns {caption: file name}."""
    from training import figures

    made: dict[str, str] = {}

    def mark(caption: str, name: str) -> None:
        made[caption] = name
        say(f"figure {fig_dir / name}")

    images, labels = _test_batch("mnist", data_dir, image_size, 1000)
    models = {r.name: load_model(Path(r.cfg.out) / "last.pt")[0] for r in runs if r.cfg is not None}
    mnist_runs = [r for r in runs if r.data == "mnist"]
    mean_in, _ = figures.class_means(models["dae"], images, labels, 10)
    rows = [("mean input", mean_in)]
    for r in mnist_runs:
        label = f"{r.name}\n(output: no template)" if r.variant == "autoencoder" else r.name
        rows.append((label, figures.class_means(models[r.name], images, labels, 10)[1]))
    figures.save_image_grid(rows, fig_dir / "templates.png", title="per-class mean textures (MNIST test)",
                            column_labels=[str(d) for d in range(10)])
    mark("Per-class templates (mean textures over the test images of each digit)", "templates.png")

    pairs = _pairs(labels, PAIRS)
    for r in mnist_runs:
        if r.variant == "autoencoder":
            continue
        strips = []
        for a, b in pairs:
            for factor in ("shape", "appearance"):
                strip = figures.interpolation_strip(models[r.name], images[a], images[b], factor)
                ends = torch.cat((images[a][None], strip, images[b][None]))  # inputs A and B framing the strip
                strips.append((f"{factor}\n{int(labels[a])}→{int(labels[b])}", ends))
        figures.save_image_grid(strips, fig_dir / f"interpolation_{r.name}.png",
                                title=f"{r.name}: one factor from A to B, the other held at A",
                                column_labels=["input A", *[""] * 8, "input B"])
        mark(f"{r.name}: shape-only and appearance-only interpolation", f"interpolation_{r.name}.png")
        digit = images[labels == ALIGN_DIGIT][:8]
        if digit.shape[0] >= 2:
            figures.save_alignment_figure(figures.alignment_panel(models[r.name], digit),
                                          fig_dir / f"alignment_{r.name}.png",
                                          title=f"{r.name}: alignment of test digits {ALIGN_DIGIT}")
            mark(f"{r.name}: alignment of eight test {ALIGN_DIGIT}s", f"alignment_{r.name}.png")

    with torch.no_grad():
        dae_out = forward(models["dae"], images[:8])
    figures.save_sample_sheet(images[:8], dae_out, fig_dir / "dae_samples.png")
    mark("DAE samples: input, texture, deformation, reconstruction", "dae_samples.png")

    if "intrinsic" in models:
        lit, _ = _test_batch("synthetic-lit", None, image_size, 64)
        intrinsic = models["intrinsic"]
        figures.save_image_grid(figures.intrinsic_rows(intrinsic, lit[:8]), fig_dir / "intrinsic.png",
                                title="intrinsic DAE on synthetic-lit (test)")
        mark("Intrinsic DAE: input, albedo, shading, reconstruction", "intrinsic.png")
        strips = [(f"light {a}→{b}", figures.interpolation_strip(intrinsic, lit[a], lit[b], "shading"))
                  for a, b in [(0, 1), (2, 3), (4, 5)]]
        figures.save_image_grid(strips, fig_dir / "lighting.png", title="shading latent from A to B")
        mark("Intrinsic DAE: lighting interpolation (shading latent only)", "lighting.png")
    return made


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    t_start = time.perf_counter()
    say(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads")
    tp = {"batch_size": 8, "steps": 1, "warmup": 1} if args.quick else {"batch_size": 64, "steps": 20, "warmup": 3}
    throughput = {n: measure_throughput(n, device="cpu", **tp) for n in (32, 64)}  # type: ignore[arg-type]
    say(f"throughput (img/s, DAE, batch {tp['batch_size']}): "
        + ", ".join(f"{n}x{n}: {v:.0f}" for n, v in throughput.items()))
    runs = plan(args)
    if not args.quick:
        per_epoch = 60000 / throughput[args.image_size]
        say(f"estimate: about {per_epoch * args.epochs * len(runs) / 60:.0f} min of training "
            f"({args.epochs} epochs x {len(runs)} models at the DAE's speed)")
    eval_limit = 200 if args.quick else None
    for r in runs:
        train_and_evaluate(r, eval_limit=eval_limit, device=args.device if args.device != "auto" else "cpu",
                           reuse=args.reuse)
    figs = draw_figures(runs, out / "figures", data_dir=args.data_dir, image_size=args.image_size)
    total = time.perf_counter() - t_start
    command = "python -m training.results " + shlex.join(sys.argv[1:] if argv is None else argv)
    write_report(out, runs=runs, figures=figs, throughput=throughput, quick=args.quick, command=command,
                 total_s=total)
    say(f"wrote {out / 'results.md'} and {out / 'results.json'} in {total / 60:.1f} min")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.results", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="MNIST IDX files (e.g. ../shared/data/mnist)")
    p.add_argument("--out", default="docs",
                   help="where results.md, results.json and figures/ go (default: docs)")
    p.add_argument("--runs", default="runs/results", help="run directories (default: runs/results)")
    p.add_argument("--epochs", type=int, default=3, help="epochs for every model (default: 3)")
    p.add_argument("--image-size", type=int, default=32, choices=(32, 64), help="default: 32")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="default: cpu")
    p.add_argument("--quick", action="store_true", help="tiny slices, tiny nets, 4 steps each: a smoke test")
    p.add_argument("--reuse", action="store_true",
                   help="skip training a model whose run folder already holds a finished run of the same config")
    return p


# -- the report ---------------------------------------------------------------------------------------
COLUMNS = (("recon_mse", "recon MSE ↓"), ("recon_l1", "recon L1 ↓"), ("alignment", "alignment ↓"),
           ("alignment_scale_free", "scale-free alignment ↓"),
           ("template_purity", "template purity ↑"), ("swap_shape_rel", "swap shape rel ↓"),
           ("swap_appearance_rel", "swap appearance rel ↓"),
           ("accuracy", "class accuracy ↑"))
INTRINSIC_COLUMNS = (("recon_mse", "recon MSE"), ("albedo_mse", "albedo MSE"),
                     ("albedo_si_mse", "albedo SI-MSE"),
                     ("shading_mse", "shading MSE"), ("shading_si_mse", "shading SI-MSE"),
                     ("deformation_error_px", "deformation EPE (px)"),
                     ("deformation_error_identity_px", "identity EPE (px)"), ("alignment", "alignment"))


def _fmt(metrics: dict[str, float], key: str) -> str:
    return f"{metrics[key]:.4g}" if key in metrics else "n/a"


def verdict(runs: list[Run]) -> str:
    """Plain words on the lecture's claim, from the numbers (never hand-written)."""
    mnist = {r.name: r.metrics for r in runs if r.data == "mnist" and r.metrics}
    if "class-aware" not in mnist:
        return "Not measured: the class-aware run is missing."
    ca = mnist["class-aware"]
    best_recon = min(mnist, key=lambda n: mnist[n]["recon_mse"])
    # Alignment counts only for models whose templates are still their own digits: a model that warps one
    # template into several digits scores a low variance per class without learning any appearance.
    warped = {n: m for n, m in mnist.items() if "alignment" in m and m.get("template_purity", 1.0) >= 0.9}
    warped = warped or {n: m for n, m in mnist.items() if "alignment" in m}
    best_align = min(warped, key=lambda n: warped[n]["alignment"])
    class_aware = {r.name for r in runs if r.variant == "class-aware"}
    recon_ok, align_ok = best_recon in class_aware, best_align in class_aware
    words = {(True, True): "**Holds here**", (False, False): "**Does not hold here**"}.get(
        (recon_ok, align_ok), "**Holds only in part here**")
    recon = (f"the class-aware `{best_recon}` has the lowest test reconstruction MSE"
             f" ({mnist[best_recon]['recon_mse']:.4f})" if recon_ok else
             f"`{best_recon}` reconstructs best (MSE {mnist[best_recon]['recon_mse']:.4f} against the "
             f"class-aware DAE's {ca['recon_mse']:.4f})")
    best = warped[best_align]
    align = (f"the class-aware `{best_align}` has the best-aligned textures" if align_ok else
             f"`{best_align}` has the best-aligned textures (the class-aware DAE: {ca['alignment']:.4g})")
    align += (f" among the models whose templates are their own digits (template purity ≥ 0.9): alignment "
              f"{best['alignment']:.4g}, scale-free {best['alignment_scale_free']:.4g}")
    small = ""
    if "dae-app2" in mnist and "class-aware-app2" in mnist:
        d2, c2 = mnist["dae-app2"], mnist["class-aware-app2"]
        small = (
            f" With a 2-d appearance code (shape 142, same total), where the warp has to carry the shape: "
            f"class-aware DAE recon MSE {c2['recon_mse']:.4f} vs DAE {d2['recon_mse']:.4f}, alignment "
            f"{c2['alignment']:.4g} vs {d2['alignment']:.4g} (scale-free {c2['alignment_scale_free']:.4g} vs "
            f"{d2['alignment_scale_free']:.4g}), template purity {c2['template_purity']:.2g} vs "
            f"{d2['template_purity']:.2g}, swap shape rel {c2['swap_shape_rel']:.3g} vs "
            f"{d2['swap_shape_rel']:.3g}, swap appearance rel {c2['swap_appearance_rel']:.3g} vs "
            f"{d2['swap_appearance_rel']:.3g}: the class-aware model is "
            + ("better" if c2["recon_mse"] < d2["recon_mse"] else "worse") + " at reconstruction, "
            + ("better" if c2["alignment"] < d2["alignment"] else "worse") + " at alignment and "
            + ("keeps more templates of their own digit" if c2["template_purity"] > d2["template_purity"]
               else "keeps no more templates of their own digit") + " there (see the templates figure)."
        )
    return (f"{words}: {recon}; {align}.{small} Caveats: the class-aware model is trained with the labels (an "
            "extra, supervised input the others do not get), one seed, a short budget; alignment is read "
            "beside reconstruction because a faint or blank texture also has a low variance.")


def write_report(out: Path, *, runs: list[Run], figures: dict[str, str], throughput: dict[int, float],
                 quick: bool, command: str, total_s: float) -> None:
    """``OUT/results.md`` (tables, verdict, figures, commands) and ``OUT/results.json`` (raw metrics)."""
    out.mkdir(parents=True, exist_ok=True)
    mnist = [r for r in runs if r.data == "mnist"]
    dae = next(r for r in runs if r.name == "dae")
    cfg = dae.cfg or TrainConfig()
    lines = ["# Results: plain autoencoder vs DAE vs class-aware DAE on MNIST", "",
             f"Generated by `{command}` (`make results`) on {time.strftime('%Y-%m-%d %H:%M')} "
             f"in {total_s / 60:.1f} min. Do not edit by hand: rerun the command.", ""]
    if quick:
        lines += ["> **--quick smoke run**: tiny slices, tiny nets, 4 steps per model. The numbers only show "
                  "that the pipeline runs; they say nothing about the models.", ""]
    lines += ["## Machine", "", f"{platform.platform()}; {platform.processor() or platform.machine()}; "
              f"{os.cpu_count()} CPUs; torch {torch.__version__} ({torch.get_num_threads()} threads); "
              f"device `{cfg.device}`.", "",
              "## Training throughput", "",
              "Full optimiser steps of the DAE (batch 64, random images, no data loading), measured by "
              "`python -c 'from training.train import measure_throughput as m; print(m(32), m(64))'`:", "",
              "| image size | img/s |", "|---|---|"]
    lines += [f"| {n}×{n} | {v:.0f} |" for n, v in throughput.items()]
    lines += ["", "## Set-up", "",
              f"- MNIST at {cfg.image_size}×{cfg.image_size}; training set "
              f"{'first ' + str(cfg.limit) + ' images' if cfg.limit else 'all 60000 images'}, metrics on the "
              f"test set ({int(dae.metrics.get('images', 0))} images).",
              f"- Same budget for every model: {cfg.epochs if cfg.max_steps is None else cfg.max_steps} "
              f"{'epochs' if cfg.max_steps is None else 'steps'}, batch {cfg.batch_size}, Adam lr {cfg.lr}, "
              f"seed {cfg.seed}, {cfg.recon.upper()} reconstruction loss, default warp-loss weights.",
              f"- Same total latent size: appearance {cfg.appearance_dim} + shape {cfg.shape_dim} = "
              f"{cfg.appearance_dim + cfg.shape_dim} (the *-app2 rows: 2 + {cfg.appearance_dim + cfg.shape_dim - 2}); "
              "the plain autoencoder has one code of that size. The "
              "class-aware DAE adds a 10-way class code, fed the label's one-hot in training and its own "
              "predicted probabilities at test time: extra (supervised) information, not extra capacity "
              "bought from the latent budget.",
              "- Metrics (see `training/evaluate.py`): alignment = per-class pixel variance of the textures "
              "over that of the inputs (0 = one template per class; scale-free: each variance over the mean "
              "square of its images, so a faint texture gains nothing); swap rel = after decoding (shape of A, "
              "appearance of B, same class) and re-encoding, the latent's distance to A's shape (B's "
              "appearance) over the A–B distance (0 = perfectly consistent, 1 = no better than the other "
              "image's code). The plain autoencoder has no texture or shape: those cells are n/a.", "",
              "## MNIST test metrics", "",
              "| model | warp | appearance dim | steps | train time | " + " | ".join(t for _, t in COLUMNS) + " |",
              "|---" * (5 + len(COLUMNS)) + "|"]
    for r in mnist:
        assert r.cfg is not None
        lines.append(f"| {r.name} | {r.warp if r.variant != 'autoencoder' else '—'} | "
                     f"{r.cfg.appearance_dim if r.variant != 'autoencoder' else '—'} | {r.steps} | "
                     f"{r.wall_s / 60:.1f} min | "
                     + " | ".join(_fmt(r.metrics, k) for k, _ in COLUMNS) + " |")
    lines += ["", "## The lecture's claim", "",
              "Lecture: on MNIST the class-aware DAE \"gives the best results both in reconstruction and in "
              "learning appearance\".", "", verdict(runs), ""]
    intr = next((r for r in runs if r.name == "intrinsic"), None)
    if intr is not None and intr.metrics:
        lines += ["## Intrinsic DAE on synthetic-lit (ground truth known)", "",
                  f"{intr.steps} steps in {intr.wall_s / 60:.1f} min. SI = scale-invariant (albedo × shading "
                  "is only defined up to a per-image scale); EPE = mean end-point error of the recovered "
                  "sampling grid against the true one, beside the identity grid's.", "",
                  "| " + " | ".join(t for _, t in INTRINSIC_COLUMNS) + " |",
                  "|---" * len(INTRINSIC_COLUMNS) + "|",
                  "| " + " | ".join(_fmt(intr.metrics, k) for k, _ in INTRINSIC_COLUMNS) + " |", ""]
    lines += ["## DAE on the full MNIST training set", "",
              f"The `dae` run above: {dae.steps} steps of batch {cfg.batch_size} at "
              f"{cfg.image_size}×{cfg.image_size} in {dae.wall_s / 60:.1f} min; test reconstruction MSE "
              f"{_fmt(dae.metrics, 'recon_mse')}, L1 {_fmt(dae.metrics, 'recon_l1')}.", "",
              "## Figures", ""]
    for caption, name in figures.items():
        lines += [f"**{caption}**", "", f"![{caption}](figures/{name})", ""]
    lines += ["## Reproduce one run", "", "```"]
    for r in runs:
        if r.cfg is not None:
            lines += [r.cfg.command, f"python -m training evaluate --checkpoint {r.cfg.out}/last.pt "
                      f"--out {r.cfg.out}/metrics.json"]
    lines += ["```", ""]
    (out / "results.md").write_text("\n".join(lines))
    raw = {r.name: {"variant": r.variant, "warp": r.warp, "data": r.data, "steps": r.steps,
                    "wall_s": round(r.wall_s, 1), "command": r.cfg.command if r.cfg else "",
                    "metrics": r.metrics} for r in runs}
    summary = {"command": command, "quick": quick, "throughput": throughput, "runs": raw}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
