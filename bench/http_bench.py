"""The service against the HTTP floor and its peers, in one run, driven by ``wrk`` (``make bench``, part ``http``).

    python -m bench --only http --out docs            # the section "HTTP: floor, service, peers" of benchmarks.md

One server up at a time, ``rounds`` interleaved rounds (the best of them counts: the machine is shared), the
same PNG body for everyone (``docs/figures/digit.png``, posted raw as ``image/png``):

- ``floor``: ``bench/peers/floor.py`` on plain uvicorn (``--loop asyncio --http h11``): the HTTP stack alone;
- ``service``: ``python -m service`` with its defaults (``harness.server.launch``): one process;
- ``service-2``: the same with ``DAE_WORKERS=2``, one worker per core of this 2-core machine (service/workers.py);
- ``minimal``: ``bench/peers/minimal.py`` (FastAPI + onnxruntime, session.run inline) on uvicorn's defaults;
- ``minimal-2``: the same with ``uvicorn --workers 2``: the peer given as many processes as ``service-2``;
- ``litserve``: ``bench/peers/lit.py`` (LitServe, batching on) from ``build/peers-venv`` (made on first use).

Before timing, every model server's answers are compared with onnxruntime run in this process (max abs
difference of the latents and of the .npz arrays). Then, per endpoint (``/encode``; ``/reconstruct?format=npz``)
and connection count, one wrk run: req/s, p50/p99, CPU cores the server's processes used. In-process
onnxruntime throughput for /reconstruct is measured at the images per batch each service row itself formed,
in every round (the best round counts, as for the servers).
The storm: wrk at ``storm`` × the admission limit in connections (``DAE_MAX_INFLIGHT``, the service's, shared
out between its workers; clients that retry at once) against each service row; goodput = 2xx answers per
second, compared with that row's capacity; the log is searched for tracebacks.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.wrk import Run, ensure_wrk, wrk
from harness.ports import free_port
from harness.server import REPO, Process, launch

ENDPOINTS = {"encode": "/encode", "reconstruct": "/reconstruct?format=npz"}
BODY = REPO / "docs" / "figures" / "digit.png"
PEERS_VENV = REPO / "build" / "peers-venv"
PEER_PACKAGES = ("litserve", "onnxruntime", "pillow", "numpy")
MAX_INFLIGHT = 128  # the service's default DAE_MAX_INFLIGHT (shared out between its workers)
SERVICES: dict[str, dict[str, Any]] = {"service": {}, "service-2": {"workers": 2}}  # launch settings per row


@dataclass(frozen=True)
class HttpSettings:
    connections: tuple[int, ...] = (1, 16)
    seconds: float = 5.0
    rounds: int = 2
    warmup: float = 1.0  # seconds of the same load before each timed run, not counted (every server alike)
    storm: tuple[int, ...] = (4, 10)  # multiples of DAE_MAX_INFLIGHT, in connections
    storm_seconds: float = 6.0
    servers: tuple[str, ...] = ("floor", "service", "service-2", "minimal", "minimal-2", "litserve")


def http_bundle(root: Path) -> Path:
    """The bundle the service serves by default (models/mnist) when it has the fused decoder graph; else an
    untrained model of the same architecture exported here with it (speed does not depend on the weights)."""
    default = REPO / "models" / "mnist"
    manifest = default / "manifest.json"
    if manifest.is_file() and '"decoder"' in manifest.read_text():
        return default
    out = root / "mnist-like"
    if not (out / "manifest.json").is_file():
        import torch

        from export.bundle import export_bundle
        from training.checkpoint import save_checkpoint
        from training.config import ModelConfig
        from training.model import build_model

        torch.manual_seed(0)
        cfg = ModelConfig(variant="class-aware", image_size=32, appearance_dim=2, shape_dim=142)
        ckpt = root / "mnist-like.pt"
        root.mkdir(parents=True, exist_ok=True)
        save_checkpoint(ckpt, build_model(cfg), cfg, train_config={"data": "synthetic", "note": "untrained, bench"})
        export_bundle(ckpt, out, name="mnist", verify=False, progress=None)
    return out


# -- the servers -------------------------------------------------------------------------------------------------
class Served:
    """A running server: base URL, the pid whose process tree is charged for CPU, how to stop it."""

    def __init__(self, url: str, pid: int, stop: Callable[[], object], log: Path) -> None:
        self.url, self.pid, self._stop, self.log = url, pid, stop, log

    def stop(self) -> None:
        self._stop()


def _http_ok(url: str, method: str = "GET", body: bytes | None = None) -> bool:
    try:
        req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "image/png"})
        with urllib.request.urlopen(req, timeout=2) as r:
            return bool(200 <= r.status < 300)
    except OSError:
        return False


def peers_python() -> Path:
    """The peers' virtualenv (LitServe brings its own FastAPI/uvicorn pins): made on first use."""
    py = PEERS_VENV / "bin" / "python"
    if not py.is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEERS_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True, timeout=900)
    return py


def start(name: str, bundle: Path, work: Path) -> Served:
    log = work / f"{name}.log"
    if name in SERVICES:
        settings = SERVICES[name]
        s = launch(bundle, log, **settings)
        workers = int(settings.get("workers", 1))
        if workers > 1:  # ready answers once one worker is; time them all
            s.wait_until(lambda: s.logs().count('"message":"ready"') >= workers, 60, "ready in every worker")
        return Served(s.url, s.pid, s.stop, log)
    port = free_port()
    env = {**os.environ, "DAE_BUNDLE": str(bundle), "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPO)}
    uvicorn = [sys.executable, "-m", "uvicorn", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    if name == "floor":
        cmd = [*uvicorn, "--loop", "asyncio", "--http", "h11", "bench.peers.floor:app"]
    elif name == "minimal":
        cmd = [*uvicorn, "bench.peers.minimal:app"]  # uvicorn's defaults, as a user would run it
    elif name == "minimal-2":
        cmd = [*uvicorn, "--workers", "2", "bench.peers.minimal:app"]
    elif name == "litserve":
        cmd = [str(peers_python()), "-m", "bench.peers.lit", "--port", str(port)]
    else:
        raise ValueError(name)
    proc = Process(cmd, env=env, log=log, group=True)  # LitServe forks workers: stop() ends them all
    url = f"http://127.0.0.1:{port}"
    body = BODY.read_bytes()
    proc.wait_until(lambda: _http_ok(url + "/encode", "POST", body), timeout=120)
    if name == "minimal-2":  # the first worker answers before the second has loaded its session
        time.sleep(3)
    return Served(url, proc.pid, proc.stop, log)


# -- checks and measurements -------------------------------------------------------------------------------------
def _post(url: str, body: bytes) -> bytes:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "image/png"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return bytes(r.read())


def output_difference(url: str, body: bytes, reference: dict[str, np.ndarray]) -> float:
    """Max abs difference of a server's /encode latents and /reconstruct arrays from in-process onnxruntime."""
    import io
    import json

    item = json.loads(_post(url + "/encode", body))["items"][0]
    diffs = [float(np.abs(np.asarray(item[k], np.float32) - reference[k][0]).max()) for k in ("shape", "appearance")]
    with np.load(io.BytesIO(_post(url + ENDPOINTS["reconstruct"], body))) as z:
        for k in ("texture", "reconstruction", "grid", "displacement"):
            diffs.append(float(np.abs(z[k] - reference[k]).max()))
    return max(diffs)


def reference_outputs(bundle: Path, body: bytes) -> dict[str, np.ndarray]:
    from bench.peers.model import PeerModel

    m = PeerModel(bundle)
    latents = m.encode(m.image(body)[None])
    return {**latents, **m.decode(latents)}


def in_process(bundle: Path, body: bytes, batch: int, seconds: float = 2.0) -> float:
    """onnxruntime in this process, encoder then decoder on ``batch`` images: images per second."""
    from bench.peers.model import PeerModel

    m = PeerModel(bundle)
    images = np.repeat(m.image(body)[None], batch, axis=0)
    m.decode(m.encode(images))
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        m.decode(m.encode(images))
        n += batch
    return n / (time.perf_counter() - t0)


def tree_cpu_seconds(pid: int) -> float | None:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def measure(served: Served, path: str, body: bytes, connections: int, seconds: float, warmup: float = 0.0) -> Run:
    """One timed wrk run, after ``warmup`` seconds of the same load that do not count: a server's first second
    (allocator pools, cold caches, cores in deep idle states) is slower; without it the service's /encode c=1
    cells of one run here sat at 648 and 1,096 req/s, against 1,758-1,915 with it an hour later."""
    threads = 1 if connections <= 16 else 2
    if warmup > 0:
        wrk(served.url + path, body=body, connections=connections, seconds=warmup, threads=threads)
    cpu0, t0 = tree_cpu_seconds(served.pid), time.perf_counter()
    run = wrk(served.url + path, body=body, connections=connections, seconds=seconds, threads=threads)
    cpu1, wall = tree_cpu_seconds(served.pid), time.perf_counter() - t0
    if cpu0 is not None and cpu1 is not None:
        run.cores = (cpu1 - cpu0) / wall
    return run


def _batches(metrics: str, queue: str) -> tuple[float, float]:
    values = []
    for name in ("dae_batches_total", "dae_batch_images_total"):
        m = re.search(rf'^{name}\{{queue="{queue}"\}} (\S+)$', metrics, re.M)
        values.append(float(m.group(1)) if m else 0.0)
    return values[0], values[1]


def _metrics(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        return str(r.read().decode())


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # wrk and the server (our children) need a descriptor per storm connection
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def bench_http(bundle: Path, work: Path, s: HttpSettings, progress: Callable[[str], None]) -> dict[str, Any]:
    ensure_wrk()
    raise_fd_limit()
    work.mkdir(parents=True, exist_ok=True)
    body = BODY.read_bytes()
    ref = reference_outputs(bundle, body)
    runs: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    diff: dict[str, float] = {}
    batches: dict[str, dict[int, float]] = {}
    speed: dict[int, float] = {}  # in-process images/s by batch size: the best round
    skipped: dict[str, str] = {}
    for rnd in range(s.rounds):
        for name in s.servers:
            if name in skipped:
                continue
            try:
                served = start(name, bundle, work)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                skipped[name] = str(e).splitlines()[0][:200]
                progress(f"[bench] http: {name} not run: {skipped[name]}")
                continue
            try:
                if name != "floor" and rnd == 0:
                    diff[name] = output_difference(served.url, body, ref)
                for endpoint, path in ENDPOINTS.items():
                    for c in s.connections:
                        before = _metrics(served.url) if name in SERVICES else ""
                        run = measure(served, path, body, c, s.seconds, s.warmup)
                        if name in SERVICES and endpoint == "reconstruct":
                            b0, i0 = _batches(before, "decode")  # /metrics sums every worker's
                            b1, i1 = _batches(_metrics(served.url), "decode")
                            batches.setdefault(name, {})[c] = (i1 - i0) / max(b1 - b0, 1.0)
                        cell = runs.setdefault(name, {}).setdefault(endpoint, {})
                        if c not in cell or run.good_rps > cell[c]["good_rps"]:
                            cell[c] = run.as_dict()
                        progress(
                            f"[bench] http round {rnd + 1}: {name} {endpoint} c={c}: {run.rps:,.0f} req/s, "
                            f"p50 {run.p50_ms:.2f} ms, {run.cores or 0:.2f} cores"
                        )
            finally:
                served.stop()
        # In-process onnxruntime at the batch sizes the service rows formed, once per round like every server
        # cell (the best round counts on both sides of the ratio: this machine's state moves either by 1.5x).
        for b in sorted({max(1, round(v)) for per in batches.values() for v in per.values()}):
            ips = in_process(bundle, body, b)
            speed[b] = max(speed.get(b, 0.0), ips)
            progress(f"[bench] http round {rnd + 1}: in-process onnxruntime batch {b}: {ips:,.0f} images/s")
    result: dict[str, Any] = {
        "settings": asdict(s),
        "runs": runs,
        "output_max_abs_diff": diff,
        "skipped": skipped,
        "service_decode_batch": batches,
    }
    result["in_process"] = {}
    for name, per in batches.items():
        for c, formed in per.items():
            b = max(1, round(formed))  # measured after the last round, with the other sizes it formed
            result["in_process"].setdefault(name, {})[str(c)] = {"batch": b, "images_per_s": speed[b]}
    if s.storm:
        result["storm"] = {name: storm(name, bundle, work, body, s, progress) for name in SERVICES if name in s.servers}
    return result


def storm(
    name: str, bundle: Path, work: Path, body: bytes, s: HttpSettings, progress: Callable[[str], None]
) -> dict[str, Any]:
    """/reconstruct at k × the admission limit in connections, clients that retry at once; goodput vs capacity."""
    served = start(name, bundle, work)
    log = served.log
    try:
        capacity = max(
            measure(served, ENDPOINTS["reconstruct"], body, c, s.storm_seconds, s.warmup).good_rps for c in (16, 64)
        )
        rows = []
        for k in s.storm:
            run = measure(served, ENDPOINTS["reconstruct"], body, k * MAX_INFLIGHT, s.storm_seconds)
            rows.append({"multiple": k, **run.as_dict(), "goodput_ratio": run.good_rps / capacity})
            progress(
                f"[bench] http storm {name} {k}x: {run.good_rps:,.0f} good req/s of {run.rps:,.0f} "
                f"(capacity {capacity:,.0f})"
            )
    finally:
        served.stop()
    text = log.read_text(errors="replace")
    return {
        "admission": MAX_INFLIGHT,
        "capacity_rps": capacity,
        "rows": rows,
        "tracebacks": text.count("Traceback"),
        "asgi_exceptions": text.count("Exception in ASGI application"),
        "disconnect_lines": text.count('"client disconnected"'),
    }
