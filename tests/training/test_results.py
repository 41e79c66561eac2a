"""`python -m training.results --quick`: the whole comparison pipeline end to end on tiny slices (~1 min).

    .venv/bin/python -m pytest tests/training/test_results.py -q
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from training.results import Run, main, verdict

FIGURES = ("templates.png", "interpolation_dae.png", "interpolation_class-aware.png", "alignment_dae.png",
           "alignment_class-aware.png", "interpolation_class-aware-app2.png", "alignment_dae-app2.png",
           "dae_samples.png", "intrinsic.png", "lighting.png")


@pytest.mark.slow
def test_quick_run_writes_report_json_and_every_figure(tmp_path: Path, mnist_dir: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "docs"
    code = main(["--data-dir", str(mnist_dir), "--out", str(out), "--runs", str(tmp_path / "runs"), "--quick"])
    assert code == 0
    progress = capsys.readouterr().out
    assert "[results] training class-aware" in progress and "[results] wrote" in progress

    raw = json.loads((out / "results.json").read_text())
    assert set(raw["runs"]) == {"autoencoder", "dae", "class-aware", "dae-affine", "dae-app2", "class-aware-app2",
                                "intrinsic"}
    steps = {r["steps"] for r in raw["runs"].values()}
    assert steps == {4}  # the same budget for every model
    ae, ca = raw["runs"]["autoencoder"]["metrics"], raw["runs"]["class-aware"]["metrics"]
    assert "alignment" not in ae and "accuracy" in ca
    assert "albedo_si_mse" in raw["runs"]["intrinsic"]["metrics"]
    assert set(raw["throughput"]) == {"32", "64"}

    md = (out / "results.md").read_text()
    assert "--quick smoke run" in md
    for section in ("## Machine", "## Training throughput", "## MNIST test metrics", "## The lecture's claim",
                    "## Intrinsic DAE on synthetic-lit", "## DAE on the full MNIST training set"):
        assert section in md, section
    assert re.search(r"\*\*(Holds here|Does not hold here|Holds only in part here)\*\*", md)
    assert "| autoencoder | — | — | 4 |" in md and "n/a" in md  # no warp, no appearance dim, 4 steps
    assert "python -m training fit --data mnist" in md  # each run's own command
    for name in FIGURES:
        assert f"figures/{name}" in md, name
        with Image.open(out / "figures" / name) as im:
            assert im.format == "PNG" and min(im.size) > 50


def _run(name: str, **metrics: float) -> Run:
    return Run(name=name, variant=name, metrics=metrics)


def test_verdict_reads_the_numbers() -> None:
    ok = [_run("autoencoder", recon_mse=0.03), _run("dae", recon_mse=0.02, alignment=0.5, alignment_scale_free=0.6),
          _run("class-aware", recon_mse=0.01, alignment=0.2, alignment_scale_free=0.3)]
    assert verdict(ok).startswith("**Holds here**")
    half = [*ok[:2], _run("class-aware", recon_mse=0.01, alignment=0.9, alignment_scale_free=0.9)]
    assert verdict(half).startswith("**Holds only in part here**") and "`dae` has the best-aligned" in verdict(half)
    worse = [*ok[:2], _run("class-aware", recon_mse=0.05, alignment=0.9, alignment_scale_free=0.9)]
    assert verdict(worse).startswith("**Does not hold here**") and "`dae` reconstructs best" in verdict(worse)
    assert verdict(ok[:2]).startswith("Not measured")
    # A model that warps one template into several digits (low purity) does not win on alignment.
    collapsed = [*ok[:2], _run("class-aware", recon_mse=0.01, alignment=0.3, alignment_scale_free=0.3),
                 _run("dae-app2", recon_mse=0.02, alignment=0.1, alignment_scale_free=0.1, template_purity=0.5)]
    assert verdict(collapsed).startswith("**Holds here**")
