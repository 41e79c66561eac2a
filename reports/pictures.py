"""The figures of docs/results.md, drawn from each run's seed-0 model on test images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from reports.plan import Run
from reports.runner import say, test_split
from training import figures
from training.checkpoint import load_model
from training.data import size
from training.model import Model

ALIGN_CLASS = {"mnist": 3, "fashion-mnist": 9}  # a 3; an ankle boot
PAIRS = 4


def _seed(run: Run) -> int:
    seed = run.trained_seed
    assert seed is not None, "drawn only from runs with a model here"
    return seed


def _test_batch(run: Run, n: int) -> tuple[Tensor, Tensor]:
    cfg = run.config(_seed(run))
    ds = test_split(cfg, n)
    items = [ds[i] for i in range(size(ds))]
    return torch.stack([it["image"] for it in items]), torch.stack([it["label"] for it in items])


def _model(run: Run) -> Model:
    return load_model(Path(run.config(_seed(run)).out) / "last.pt")[0].eval()


def _same_class_pairs(labels: Tensor, count: int) -> list[tuple[int, int]]:
    """``count`` pairs of different images of the same class, each pair from another class."""
    out: list[tuple[int, int]] = []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten().tolist()
        if len(idx) >= 2:
            out.append((idx[0], idx[1]))
        if len(out) == count:
            break
    return out


def _one_per_class(labels: Tensor, count: int) -> Tensor:
    picks = [int((labels == c).nonzero()[0]) for c in labels.unique().tolist()[:count]]
    return torch.tensor(picks)


def draw(plan: list[Run], fig_dir: Path, kept: dict[str, str] | None = None) -> dict[str, str]:
    """Every PNG under ``fig_dir`` that the runs with a model here can draw; returns {caption: file name}.

    A figure of runs whose metrics were only recorded (no model here) is not redrawn: when ``kept`` (the earlier
    page's {caption: file name}) names it and the file is still there, it stays, in the earlier order."""
    made: dict[str, str] = {}

    def mark(caption: str, name: str) -> None:
        made[caption] = name
        say(f"figure {fig_dir / name}")

    _draw(plan, fig_dir, mark)
    if not kept:
        return made
    drawn = set(made.values())
    merged = {c: n for c, n in kept.items() if n not in drawn and (fig_dir / n).is_file()}
    for caption, name in made.items():  # a redrawn figure takes its earlier place, with its new caption
        merged[caption] = name
    order = {n: i for i, n in enumerate(kept.values())}
    return dict(sorted(merged.items(), key=lambda cn: order.get(cn[1], len(order))))


def _draw(plan: list[Run], fig_dir: Path, mark: Callable[[str, str], None]) -> None:
    here = [r for r in plan if r.trained_seed is not None]
    by_name = {r.name: r for r in here}
    warped = [r for r in here if r.group in ("main", "fashion") and r.variant != "autoencoder"]
    mnist_main = [r for r in warped if r.data == "mnist"]
    every_main = [r for r in plan if r.group == "main" and r.variant != "autoencoder" and r.data == "mnist"]
    if mnist_main and len(mnist_main) == len(every_main):  # one figure of them all: only when all are here
        images, labels = _test_batch(mnist_main[0], 1000)
        rows = [("mean input", figures.class_means(_model(mnist_main[0]), images, labels, 10)[0])]
        rows += [(r.name, figures.class_means(_model(r), images, labels, 10)[1]) for r in mnist_main]
        figures.save_image_grid(
            rows,
            fig_dir / "templates.png",
            title="per-class mean textures (MNIST test)",
            column_labels=[str(d) for d in range(10)],
        )
        mark("Per-class templates: mean textures over the test images of each digit", "templates.png")
    for run in warped:
        model = _model(run)
        images, labels = _test_batch(run, 1000)
        cls = ALIGN_CLASS.get(run.data, 0)
        chosen = images[labels == cls][:8]
        figures.save_alignment_figure(
            figures.alignment_panel(model, chosen),
            fig_dir / f"alignment_{run.name}.png",
            title=f"{run.name}: eight test images of class {cls}",
        )
        mark(
            f"{run.title}: alignment (inputs, textures, textures warped by the mean deformation, "
            "reconstructions, means)",
            f"alignment_{run.name}.png",
        )
        idx = _one_per_class(labels, 5)
        same = images[labels == cls][8:13]
        for tag, rows_from, cols_from in (("classes", images[idx], images[idx]), ("same", same, same)):
            grid = figures.swap_grid(model, rows_from, cols_from)
            name = f"swap_{tag}_{run.name}.png"
            figures.save_swap_figure(
                rows_from,
                cols_from,
                grid,
                fig_dir / name,
                title=f"{run.name}: appearance of the row, shape of the column",
            )
            what = "five classes" if tag == "classes" else f"five images of class {cls}"
            mark(f"{run.title}: swap grid over {what} (row: appearance, column: shape)", name)
        strips = []
        for a, b in _same_class_pairs(labels, PAIRS):
            for factor in ("shape", "appearance"):
                strip = figures.interpolation_strip(model, images[a], images[b], factor)
                strips.append(
                    (f"{factor}\n{int(labels[a])}: A→B", torch.cat((images[a][None], strip, images[b][None])))
                )
        figures.save_image_grid(
            strips,
            fig_dir / f"interpolation_{run.name}.png",
            title=f"{run.name}: one factor from A to B, the other held at A",
            column_labels=["input A", *[""] * 8, "input B"],
        )
        mark(f"{run.title}: shape-only and appearance-only interpolation", f"interpolation_{run.name}.png")
        with torch.no_grad():
            out = model(images[:8])
        figures.save_sample_sheet(images[:8], out, fig_dir / f"samples_{run.name}.png")
        mark(f"{run.title}: input, texture, deformation, reconstruction", f"samples_{run.name}.png")
    for intrinsic in (r for r in here if r.group == "intrinsic"):
        model = _model(intrinsic)
        lit, _ = _test_batch(intrinsic, 64)
        tag = "" if intrinsic.name == "intrinsic" else f"_{intrinsic.name.removeprefix('intrinsic-')}"
        figures.save_image_grid(
            figures.intrinsic_rows(model, lit[:8]),
            fig_dir / f"intrinsic{tag}.png",
            title=f"{intrinsic.title} (test)",
        )
        mark(f"{intrinsic.title}: input, albedo, shading, reconstruction", f"intrinsic{tag}.png")
        strips = [
            (f"light {a}→{b}", figures.interpolation_strip(model, lit[a], lit[b], "shading"))
            for a, b in [(0, 1), (2, 3), (4, 5)]
        ]
        figures.save_image_grid(strips, fig_dir / f"lighting{tag}.png", title="shading latent from A to B")
        mark(f"{intrinsic.title}: lighting interpolation (shading latent only)", f"lighting{tag}.png")
    synthetic = by_name.get("synthetic-dae")
    if synthetic is not None and synthetic.metrics:
        model = _model(synthetic)
        images, _ = _test_batch(synthetic, 8)
        with torch.no_grad():
            out = model(images)
        figures.save_sample_sheet(images, out, fig_dir / "samples_synthetic-dae.png")
        mark("DAE on synthetic warps: input, texture, deformation, reconstruction", "samples_synthetic-dae.png")
