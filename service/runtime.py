"""onnxruntime sessions for a bundle's graphs: verified at load, providers chosen and reported honestly.

Load order (each step refuses to start with a message that names the problem):
1. ``manifest.json`` parses against the schema (``bundle.manifest``);
2. every graph file has the sha256 the manifest records;
3. providers: ``DAE_PROVIDERS`` (default CUDA then CPU) filtered by
   ``onnxruntime.get_available_providers()``;
   with ``DAE_REQUIRE_CUDA=true`` a missing CUDA provider is fatal;
4. sessions are created one at a time (parallel creation races for the GPU arena), and each session's real
   inputs/outputs are compared with the manifest (``check_graph_io``);
5. ``session.get_providers()`` is what is really active: logged, exposed in metadata, metrics and a header;
   with ``DAE_REQUIRE_CUDA=true`` a session that fell back to the CPU (silently, onnxruntime#23372) is fatal.

A bundle may carry the fused ``decoder`` graph (texture + deformation + warp in one graph); unless
``DAE_FUSED_DECODER=false`` it is loaded *instead of* the three graphs it replaces: they never run then, and
loading them cost start-up time, a warm-up and memory. Their files are still checksummed (step 2), and
``DAE_FUSED_DECODER=false`` loads and checks them in place of the fused one.
On CPU with more than one intra-op thread, each graph also gets a one-thread session for small batches
(``DAE_SOLO_MAX_BATCH``, default 1 image): measured here at batch 1, a second intra-op thread makes no graph
faster (encoder 103 vs 169 µs, fused decoder 1.19 vs 1.29 ms, one vs two threads, spinning off) because
waking it for each operator costs more than the half operator it takes over, and on an idle machine the wake-up
is slower still. A lone request (one connection) is a batch of one.

On CUDA, ``run`` uses I/O binding (``DAE_IO_BINDING=auto``): the inputs are copied to the device once and the
outputs are bound to host memory, so nothing between the fused graph's stages crosses to the host.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bundle.layout import Arrays
from bundle.manifest import (
    GRAPH_NAMES,
    BundleError,
    Manifest,
    check_graph_io,
    load_manifest,
    verify_checksums,
)
from service.config import CUDA, Settings

log = logging.getLogger("service.runtime")


class StartupError(RuntimeError):
    """The service cannot start as configured (no CUDA when it is required, no usable provider)."""


def choose_providers(requested: list[str], require_cuda: bool) -> list[str]:
    available = ort.get_available_providers()
    chosen = [p for p in requested if p in available]
    if require_cuda and CUDA not in chosen:
        raise StartupError(
            f"DAE_REQUIRE_CUDA is set but {CUDA} is not available (onnxruntime offers {available}; "
            "install the `gpu` extra, onnxruntime-gpu, on a machine with CUDA and cuDNN)"
        )
    if not chosen:
        raise StartupError(f"none of the requested providers {requested} is available; onnxruntime offers {available}")
    return chosen


def session_options(threads: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # The same cores decode images and run the event loop: spinning threads would steal them between batches.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


class Runtime:
    """The loaded bundle: manifest plus one InferenceSession per graph; ``run`` is thread-safe."""

    def __init__(
        self,
        bundle_dir: Path,
        manifest: Manifest,
        sessions: dict[str, ort.InferenceSession],
        io_binding: bool = False,
        solo: dict[str, ort.InferenceSession] | None = None,
        solo_max_batch: int = 0,
    ) -> None:
        self.bundle_dir = bundle_dir
        self.manifest = manifest
        self.sessions = sessions
        self.io_binding = io_binding
        self.solo = solo or {}  # one-thread sessions for batches of at most solo_max_batch rows
        self.solo_max_batch = solo_max_batch if self.solo else 0
        self.input_names = {k: [i.name for i in s.get_inputs()] for k, s in sessions.items()}
        self.output_names = {k: [o.name for o in s.get_outputs()] for k, s in sessions.items()}

    @classmethod
    def load(cls, settings: Settings) -> Runtime:
        bundle = Path(settings.bundle)
        if not bundle.is_dir():
            raise BundleError(f"bundle directory {bundle} does not exist (set DAE_BUNDLE to an exported bundle)")
        manifest = load_manifest(bundle)
        verify_checksums(bundle, manifest)
        providers = choose_providers(settings.provider_list, settings.require_cuda)
        opts = session_options(settings.threads)
        sessions: dict[str, ort.InferenceSession] = {}
        solo: dict[str, ort.InferenceSession] = {}
        use_solo = settings.solo_max_batch > 0 and settings.threads > 1 and CUDA not in providers
        keys = [k for k in GRAPH_NAMES if k in manifest.graphs]
        if settings.fused_decoder and "decoder" in keys:
            keys = ["encoder", "decoder"]
        else:
            keys = [k for k in keys if k != "decoder"]
        for key in keys:
            spec = manifest.graphs[key]
            t0 = time.perf_counter()
            try:
                sess = ort.InferenceSession(str(bundle / spec.file), sess_options=opts, providers=providers)
                if use_solo:
                    solo[key] = ort.InferenceSession(
                        str(bundle / spec.file), sess_options=session_options(1), providers=providers
                    )
            except Exception as e:  # onnxruntime raises its own exception types for unreadable graphs
                raise BundleError(f"graph {key!r}: onnxruntime cannot load {spec.file}: {e}") from e
            check_graph_io(
                key,
                spec,
                [(i.name, i.shape) for i in sess.get_inputs()],
                [(o.name, o.shape) for o in sess.get_outputs()],
            )
            active = sess.get_providers()
            if settings.require_cuda and CUDA not in active:
                raise StartupError(f"graph {key!r}: DAE_REQUIRE_CUDA is set but the session runs on {active}")
            log.info(
                "session loaded",
                extra={"graph": key, "providers": active, "seconds": round(time.perf_counter() - t0, 3)},
            )
            sessions[key] = sess
        binding = settings.io_binding == "on" or (settings.io_binding == "auto" and CUDA in providers)
        runtime = cls(bundle, manifest, sessions, io_binding=binding, solo=solo, solo_max_batch=settings.solo_max_batch)
        runtime._check_wiring()
        return runtime

    def _check_wiring(self) -> None:
        """Every decoder/warp input must be produced upstream (or be the class code the service supplies)."""
        available = set(self.output_names["encoder"]) | {"class_code"}
        for key in ("texture", "deformation", "warp"):
            if key not in self.sessions:
                continue
            missing = set(self.input_names[key]) - available
            if missing:
                raise BundleError(f"graph {key!r}: inputs {sorted(missing)} are produced by no earlier graph")
            available |= set(self.output_names[key])
        if "decoder" in self.sessions:
            missing = set(self.input_names["decoder"]) - set(self.output_names["encoder"]) - {"class_code"}
            if missing:
                raise BundleError(f"graph 'decoder': inputs {sorted(missing)} are produced by no earlier graph")

    @property
    def fused(self) -> bool:
        """Whether decoding is one run of the fused decoder graph (else texture, deformation, warp)."""
        return "decoder" in self.sessions

    @property
    def providers(self) -> dict[str, list[str]]:
        """The providers each session really runs on, by graph."""
        return {k: s.get_providers() for k, s in self.sessions.items()}

    @property
    def primary_provider(self) -> str:
        """The provider most of the work runs on (the first active one of the encoder)."""
        return str(self.sessions["encoder"].get_providers()[0])

    def session_for(self, key: str, rows: int) -> ort.InferenceSession:
        """The session that runs a batch of ``rows`` on graph ``key``: the one-thread one for small batches."""
        if rows <= self.solo_max_batch and key in self.solo:
            return self.solo[key]
        return self.sessions[key]

    def run(self, key: str, bag: Arrays) -> Arrays:
        """Run one graph, feeding its inputs by name from ``bag``; returns its outputs by name."""
        feeds = {n: np.ascontiguousarray(bag[n], dtype=np.float32) for n in self.input_names[key]}
        sess = self.session_for(key, next(iter(feeds.values())).shape[0])
        if self.io_binding:
            return self._run_bound(sess, key, feeds)
        outs = sess.run(None, feeds)
        return dict(zip(self.output_names[key], outs, strict=True))

    def _run_bound(self, sess: ort.InferenceSession, key: str, feeds: Arrays) -> Arrays:
        """One run with I/O binding: inputs copied to the session's device once, outputs bound to the host.

        A fresh binding per call: ``run`` is called from several worker threads, and a binding is not shared.
        """
        binding = sess.io_binding()
        for name, arr in feeds.items():
            binding.bind_cpu_input(name, arr)
        for name in self.output_names[key]:
            binding.bind_output(name, "cpu")
        sess.run_with_iobinding(binding)
        return dict(zip(self.output_names[key], binding.copy_outputs_to_cpu(), strict=True))
