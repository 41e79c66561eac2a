"""The README screenshot of the page: serve a bundle, drive the page in Chromium, save a full-page PNG.

    .venv/bin/python -m tests.service.e2e.screenshot                       # models/mnist -> docs/figures/page.png
    .venv/bin/python -m tests.service.e2e.screenshot --bundle DIR --out FILE
    .venv/bin/python -m tests.service.e2e.screenshot --tiny                # no trained bundle: a random-weight one

Needs scripts/install_browser.sh. Without models/mnist (and without --bundle) a tiny random-weight bundle is
exported first (torch), so the page's layout can be shot before a model is trained; re-shoot with the real one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.conftest import DEFAULT_BUNDLE, REPO, TINY, VARIANTS, start_server

from . import drive
from .browser import launch, missing_reason


def tiny_bundle(root: Path) -> Path:
    import torch

    from export.bundle import export_bundle
    from training.checkpoint import save_checkpoint
    from training.config import ModelConfig
    from training.model import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(**{**TINY, **VARIANTS["class-aware"]})
    save_checkpoint(root / "last.pt", build_model(cfg), cfg, train_config={"tiny": True})
    export_bundle(root / "last.pt", root / "bundle", name="tiny-class-aware", verify=False, progress=None)
    return root / "bundle"


def shoot(bundle: Path, out: Path, work: Path) -> Path:
    server = start_server(bundle, work / "server.log", max_wait_ms=1)
    try:
        with launch(work / "profile", viewport={"width": 1280, "height": 900}) as browser:
            page = browser.new_page()
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-ready='true']", timeout=drive.TIMEOUT_MS)
            drive.pick_sample(page, "A", 7)  # a 7 ...
            drive.wait_state(page, "#slot-A", "ready")
            drive.pick_sample(page, "B", 2)  # ... and a 2
            drive.wait_state(page, "#slot-B", "ready")
            drive.swap(page)
            drive.interpolate(page, "both", steps=9)
            drive.set_frame(page, 4)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
    finally:
        server.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.service.e2e.screenshot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", type=Path, default=None, help=f"default: {DEFAULT_BUNDLE.relative_to(REPO)}")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "figures" / "page.png")
    p.add_argument("--tiny", action="store_true", help="use a tiny random-weight bundle")
    args = p.parse_args(argv)
    if (reason := missing_reason()) is not None:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dae-shot-") as tmp:
        work = Path(tmp)
        bundle = args.bundle
        if bundle is None and not args.tiny and (DEFAULT_BUNDLE / "manifest.json").is_file():
            bundle = DEFAULT_BUNDLE
        if bundle is None:
            if not args.tiny:
                print(f"note: {DEFAULT_BUNDLE} not found; shooting a tiny random-weight model", file=sys.stderr)
            bundle = tiny_bundle(work / "tiny")
        print(f"wrote {shoot(bundle, args.out, work)} (bundle {bundle})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
