"""Verify a bundle on disk; with its checkpoint, also onnxruntime-vs-PyTorch parity.

Stages, each printed as one progress line; the first failure raises with a message naming what disagrees::

    1. manifest.json parses under the service's schema                       BundleError
    2. every graph file exists and matches its sha256                          BundleError
    3. onnx.checker (full_check) accepts each file; its opset is the manifest's BundleError
    4. an onnxruntime session's inputs/outputs (names, shapes, dtypes) are the manifest's  BundleError
    5. the manifest's own header (variant, sizes, latents, classes, warp) implies exactly those tensors
    6. with a checkpoint: it is this bundle's model, and parity holds (see export.parity)  ParityError

Command: ``python -m export verify BUNDLE_DIR [--checkpoint RUN/last.pt] [--data-dir DIR]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import onnxruntime as ort
import torch

from bundle.layout import GraphLayout, Sizes, graph_layout
from bundle.manifest import (
    OPTIONAL_GRAPHS,
    BundleError,
    Manifest,
    TensorSpec,
    check_graph_io,
    load_manifest,
    verify_checksums,
)
from export.errors import ParityError
from export.graphs import load_checkpoint, sizes_of
from export.inputs import PARITY_IMAGES, random_images, real_images
from export.onnx_graph import checked_model
from export.parity import BATCHES, ParityRow, compare, format_table

Progress = Callable[[str], None] | None
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(int64)": "int64"}


@dataclass
class VerifyReport:
    manifest: Manifest
    rows: list[ParityRow] = field(default_factory=list)
    real_source: str | None = None

    @property
    def table(self) -> str:
        return format_table(self.rows)

    def worst(self, check: str) -> float:
        return max((r.max_abs_diff for r in self.rows if r.check == check), default=0.0)


def _say(progress: Progress, msg: str) -> None:
    if progress is not None:
        progress(f"[verify] {msg}")


def open_sessions(
    bundle_dir: Path,
    manifest: Manifest,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    *,
    threads: int = 1,
) -> dict[str, ort.InferenceSession]:
    """One session per graph, in the manifest's order, with onnxruntime's own logging quietened.

    One intra-op thread by default: verification runs hundreds of tiny single-image calls, where thread
    hand-offs cost more than they save (and it keeps the check cheap on a shared machine).
    """
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: its warnings are about optional optimisations
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sessions = {}
    for key, graph in manifest.graphs.items():
        try:
            sessions[key] = ort.InferenceSession(str(bundle_dir / graph.file), opts, providers=list(providers))
        except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            raise BundleError(f"graph {key!r}: onnxruntime cannot load {graph.file}: {e}") from e
    return sessions


def _check_files(bundle_dir: Path, manifest: Manifest) -> None:
    for key, graph in manifest.graphs.items():
        try:
            checked_model(bundle_dir / graph.file, manifest.opset, "manifest")
        except ValueError as e:
            raise BundleError(f"graph {key!r}: {e}") from e


def _check_sessions(manifest: Manifest, sessions: dict[str, ort.InferenceSession]) -> None:
    for key, sess in sessions.items():
        spec = manifest.graphs[key]
        ins, outs = sess.get_inputs(), sess.get_outputs()
        check_graph_io(key, spec, [(i.name, i.shape) for i in ins], [(o.name, o.shape) for o in outs])
        for side, declared, actual in (("input", spec.inputs, ins), ("output", spec.outputs, outs)):
            for d, a in zip(declared, actual, strict=True):
                if _ORT_DTYPES.get(a.type, a.type) != d.dtype:
                    raise BundleError(
                        f"graph {key!r}: {side} {d.name!r} is {a.type} in the ONNX file, manifest says {d.dtype}"
                    )


def manifest_sizes(manifest: Manifest) -> Sizes:
    """The layout numbers a manifest's header declares (not its graph entries)."""
    return Sizes(
        manifest.variant,
        manifest.image_size,
        manifest.channels,
        appearance=manifest.latent_size("appearance"),
        shape=manifest.latent_size("shape"),
        shading=manifest.latent_size("shading_latent"),
        classes=manifest.num_classes,
        affine=bool(manifest.warp and manifest.warp.affine),
    )


def check_header(manifest: Manifest) -> None:
    """The header's sizes must imply exactly the tensors the graph entries (already matched to ONNX) list."""
    sz = manifest_sizes(manifest)
    expected = graph_layout(sz)
    if not set(expected) - OPTIONAL_GRAPHS <= set(manifest.graphs) <= set(expected):
        raise BundleError(
            f"manifest variant {sz.variant!r} has graphs {sorted(expected)}, "
            f"the manifest lists {sorted(manifest.graphs)}"
        )
    expected = {k: v for k, v in expected.items() if k in manifest.graphs}  # a bundle without the fused one
    header = (
        f"image_size={sz.image_size}, channels={sz.channels}, latents "
        f"{ {lat.name: lat.size for lat in manifest.latents} }, {sz.classes} class names, affine={sz.affine}"
    )
    for key, lay in expected.items():
        _check_side(key, "input", lay, lay.specs()[0], manifest.graphs[key].inputs, header)
        _check_side(key, "output", lay, lay.specs()[1], manifest.graphs[key].outputs, header)


def _check_side(
    key: str, side: str, lay: GraphLayout, want: list[TensorSpec], got: list[TensorSpec], header: str
) -> None:
    want_names, got_names = [t.name for t in want], [t.name for t in got]
    if want_names != got_names:
        raise BundleError(
            f"graph {key!r}: the ONNX file's {side}s are {got_names}, but a {lay.key} graph of this "
            f"manifest's variant must have {want_names}"
        )
    for w, g in zip(want, got, strict=True):
        if (w.shape, w.dtype) != (g.shape, g.dtype):
            raise BundleError(
                f"graph {key!r}: {side} {g.name!r} is {g.dtype}{g.shape} in the ONNX file, but the "
                f"manifest header ({header}) implies {w.dtype}{w.shape}"
            )


def verify_bundle(
    bundle_dir: str | Path,
    *,
    checkpoint: Path | None = None,
    data_dir: Path | None = None,
    batches: Sequence[int] = BATCHES,
    real: bool = True,
    progress: Progress = print,
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> VerifyReport:
    """Run stages 1-5 (and 6 when ``checkpoint`` is given); return the manifest and the parity rows.

    ``real=False`` skips the real-image set (only for data that is not on this machine; the CLI never does).
    """
    root = Path(bundle_dir)
    manifest = load_manifest(root)
    _say(
        progress,
        f"manifest ok: {manifest.name} ({manifest.variant}, {manifest.image_size}px, "
        f"graphs {', '.join(manifest.graphs)})",
    )
    verify_checksums(root, manifest)
    _say(progress, "sha256 of every graph file matches the manifest")
    _check_files(root, manifest)
    _say(progress, f"onnx.checker ok, opset {manifest.opset}")
    sessions = open_sessions(root, manifest, providers)
    _check_sessions(manifest, sessions)
    _say(progress, "onnxruntime inputs/outputs match the manifest")
    check_header(manifest)
    _say(progress, "manifest header agrees with the graphs")
    report = VerifyReport(manifest)
    if checkpoint is None:
        return report

    model, state = load_checkpoint(checkpoint)
    if sizes_of(model.cfg) != manifest_sizes(manifest):
        raise BundleError(
            f"checkpoint {checkpoint} is not this bundle's model: checkpoint {sizes_of(model.cfg)}, "
            f"bundle {manifest_sizes(manifest)}"
        )
    cfg = model.cfg
    image_sets = {"random": random_images(PARITY_IMAGES, cfg.channels, cfg.image_size)}
    if real:
        images, report.real_source = real_images(
            state.get("train_config") or {},
            image_size=cfg.image_size,
            channels=cfg.channels,
            data_dir=data_dir,
        )
        image_sets["real"] = images
        _say(progress, f"real inputs: {PARITY_IMAGES} images of the {report.real_source}")
    layouts = {k: v for k, v in graph_layout(manifest_sizes(manifest)).items() if k in manifest.graphs}
    with torch.no_grad():
        report.rows = compare(
            model, sessions, layouts, image_sets, batches=batches, progress=lambda m: _say(progress, m)
        )
    if progress is not None:
        progress(report.table)
    bad = [r for r in report.rows if not r.ok]
    if bad:
        raise ParityError(f"{len(bad)} parity check(s) failed:\n" + format_table(bad))
    _say(
        progress,
        f"parity ok: onnx vs torch ≤ {report.worst('onnx-vs-torch'):.1e}, pipeline ≤ "
        f"{report.worst('pipeline'):.1e}, batch vs single ≤ {report.worst('batch-vs-single'):.1e}",
    )
    return report
