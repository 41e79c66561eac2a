"""Checkpoint -> bundle: the ONNX graphs, ``manifest.json``, then verification, then an atomic-ish install.

Usage::

    from export.bundle import export_bundle
    manifest = export_bundle(Path("runs/dae/last.pt"), Path("models/mnist"), data_dir=Path("data/mnist"))

    python -m export --checkpoint runs/dae/last.pt --out models/mnist --data-dir data/mnist

Everything is written into a staging folder beside ``out`` and verified there (``export.verify``); only a
bundle that passes is moved into ``out`` (graph files first, ``manifest.json`` last, so a reader never sees a
manifest naming files that are not there yet). A failure leaves ``out`` as it was and raises.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bundle.layout import graph_layout, latent_sizes
from bundle.manifest import (
    GRAPH_NAMES,
    MANIFEST_NAME,
    GraphSpec,
    LatentSpec,
    Manifest,
    Preprocessing,
    Provenance,
    WarpSpec,
    file_sha256,
)
from export.errors import ExportError
from export.graphs import build_graphs, load_checkpoint, sizes_of
from export.onnx_graph import write_graph
from export.verify import verify_bundle
from training.config import ModelConfig

_REPO_ROOT = Path(__file__).resolve().parents[1]


def git_commit(cwd: Path = _REPO_ROOT) -> str | None:
    """``git rev-parse HEAD`` of the exporter's checkout, or None outside a git repository."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", out) else None


NAME_PATTERN = r"[A-Za-z0-9_.-]{1,64}"  # bundle.manifest.Manifest.name


def bundle_name(out: Path, name: str | None) -> str:
    """``name`` if the schema allows it (else ExportError), or the output folder's name made schema-safe."""
    if name is not None:
        if not re.fullmatch(NAME_PATTERN, name):
            raise ExportError(f"--name {name!r} is not a valid bundle name: use 1-64 of A-Z a-z 0-9 _ . -")
        return name
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", out.resolve().name).strip("-.")[:64]
    return safe or "model"


def _metrics(raw: Any) -> dict[str, float]:
    # The schema takes finite floats only: JSON has no NaN, and a bool or a string is not a metric.
    if not isinstance(raw, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in raw.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def _opt_int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def provenance(state: dict[str, Any], *, export_command: str) -> Provenance:
    """Training data, epochs and steps reached, seed, commands, the checkpoint's metrics, git commit, time."""
    tc: dict[str, Any] = state.get("train_config") or {}
    data = str(tc.get("data") or "unknown")
    if tc.get("limit"):
        data += f" (first {tc['limit']} training images)"
    return Provenance(
        data=data,
        epochs=_opt_int(state.get("epoch", tc.get("epochs"))),
        steps=_opt_int(state.get("step", tc.get("max_steps"))),
        seed=_opt_int(tc.get("seed")),
        git_commit=git_commit(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        train_command=str(tc["command"]) if tc.get("command") else None,
        export_command=export_command,
        metrics=_metrics(state.get("metrics")),
    )


def class_names(cfg: ModelConfig) -> list[str]:
    if not cfg.has_classes:
        return []
    return list(cfg.class_names) if cfg.class_names else [str(i) for i in range(cfg.num_classes)]


def build_manifest(
    cfg: ModelConfig, state: dict[str, Any], folder: Path, *, name: str, opset: int, export_command: str
) -> Manifest:
    """The manifest for the graph files already in ``folder`` (their sha256 is read from disk)."""
    sz = sizes_of(cfg)
    graphs = {}
    for key, lay in graph_layout(sz).items():
        inputs, outputs = lay.specs()
        graphs[key] = GraphSpec(file=lay.file, sha256=file_sha256(folder / lay.file), inputs=inputs, outputs=outputs)
    wc = cfg.warp_constants
    warp = (
        None
        if not cfg.has_warp
        else WarpSpec(increment_scale=wc.increment_scale, offset=wc.offset, clamp=wc.clamp, affine=sz.affine)
    )
    rgb = cfg.channels == 3
    return Manifest(
        name=name,
        variant=cfg.variant,
        image_size=cfg.image_size,
        channels=cfg.channels,  # type: ignore[arg-type]
        latents=[LatentSpec(name=n, size=s) for n, s in latent_sizes(sz)],  # type: ignore[arg-type]
        class_names=class_names(cfg),
        graphs=graphs,
        opset=opset,
        warp=warp,
        preprocessing=Preprocessing(
            color_mode="RGB" if rgb else "L",
            resize="bilinear",
            value_range=(0.0, 1.0),
            channel_order="RGB" if rgb else "gray",
        ),
        provenance=provenance(state, export_command=export_command),
    )


def _install(stage: Path, out: Path, manifest: Manifest) -> None:
    out.mkdir(parents=True, exist_ok=True)
    keep = {g.file for g in manifest.graphs.values()}
    for g in manifest.graphs.values():
        os.replace(stage / g.file, out / g.file)
    os.replace(stage / MANIFEST_NAME, out / MANIFEST_NAME)
    for key in GRAPH_NAMES:  # a re-export to a smaller variant must not leave the old graphs behind
        stale = out / f"{key}.onnx"
        if stale.name not in keep and stale.is_file():
            stale.unlink()


def export_bundle(
    checkpoint: Path,
    out: Path,
    *,
    name: str | None = None,
    opset: int = 17,
    verify: bool = True,
    data_dir: Path | None = None,
    progress: Callable[[str], None] | None = print,
    command: str | None = None,
    metrics: dict[str, float] | None = None,
) -> Manifest:
    """Export every graph of ``checkpoint``'s model to ``out`` with a manifest, verified unless told not to.

    ``command`` is recorded as the export command (the CLI passes its own argv); by default an equivalent
    ``python -m export ...`` line. ``metrics`` (e.g. the JSON of ``python -m training evaluate``) join the
    checkpoint's own metrics in the manifest's provenance.
    Raises ExportError / ParityError / BundleError; ``out`` is untouched then.
    """

    def say(message: str) -> None:
        if progress is not None:
            progress(f"[export] {message}")

    checkpoint, out = Path(checkpoint), Path(out)
    t0 = time.perf_counter()
    manifest_name = bundle_name(out, name)
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} exists and is not a folder")
    model, state = load_checkpoint(checkpoint)
    if metrics:
        state = {**state, "metrics": {**(state.get("metrics") or {}), **metrics}}
    cfg = model.cfg
    say(
        f"loaded {checkpoint}: {cfg.variant}, {cfg.image_size}px, {cfg.channels} ch, warp {cfg.warp}, "
        f"step {state.get('step')}"
    )
    if command is None:
        command = shlex.join(
            [
                "python",
                "-m",
                "export",
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
                *(["--name", name] if name else []),
                *(["--data-dir", str(data_dir)] if data_dir else []),
                "--opset",
                str(opset),
                *([] if verify else ["--no-verify"]),
            ]
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        for graph in build_graphs(model).values():
            w = write_graph(graph, graph.layout, stage / graph.layout.file, opset=opset)
            say(
                f"wrote {w.path.name} ({w.bytes / 1e6:.2f} MB, {w.seconds:.2f} s): "
                f"{', '.join(graph.layout.input_names)} -> {', '.join(graph.layout.output_names)}"
            )
        try:
            manifest = build_manifest(cfg, state, stage, name=manifest_name, opset=opset, export_command=command)
        except ValueError as e:  # pydantic ValidationError: e.g. a --name the schema does not allow
            raise ExportError(f"cannot build the manifest: {e}") from e
        (stage / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2) + "\n")
        say(f"wrote {MANIFEST_NAME} (name {manifest.name}, opset {opset}, sha256 {manifest.sha256[:12]}…)")
        if verify:
            verify_bundle(stage, checkpoint=checkpoint, data_dir=data_dir, progress=progress)
        else:
            say("verification skipped (--no-verify)")
        _install(stage, out, manifest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    say(f"bundle ready in {out} ({time.perf_counter() - t0:.1f} s)")
    return manifest
