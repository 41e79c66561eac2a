"""Turn one run's result dict into ``docs/benchmarks.md`` and ``docs/figures/bench_*.png`` (matplotlib, Agg).

The report states the machine, each target with its measured ratio and verdict, the tables behind them, and
for every missed target the reason found by profiling (:data:`bench.findings.REASONS`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.findings import FINDINGS, REASONS
from bench.targets import Result, Target, all_targets


def _f(x: float, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def targets_section(targets: list[Target]) -> list[str]:
    rows = []
    for t in targets:
        verdict = "**met**" if t.met else "**missed**"
        sign = "≥" if t.higher_is_better else "≤"
        rows.append([t.name, t.case, t.measured, f"{t.ratio:.2f}{t.unit}", f"{sign} {t.threshold:g}{t.unit}", verdict])
    lines = ["## Targets", "", *_table(["target", "case", "measured", "ratio", "needed", "verdict"], rows)]
    missed = sorted({t.name for t in targets if not t.met})
    if missed:
        lines += ["", "### Why each miss happens", ""]
        for name in missed:
            lines += [f"- **{name}**: {REASONS.get(name, 'not yet analysed.')}"]
    return [*lines, ""]


def model_section(result: Result, fig: str) -> list[str]:
    rows = []
    by_key: dict[tuple[str, int, int], dict[str, dict[str, Any]]] = {}
    for r in result["model"]:
        by_key.setdefault((r["path"], r["image_size"], r["batch"]), {})[r["backend"]] = r
    for (path, size, batch), sides in sorted(by_key.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        o, t = sides.get("onnxruntime"), sides.get("torch")
        if not (o and t):
            continue
        rows.append(
            [
                path,
                f"{size}",
                f"{batch}",
                _f(o["p50_ms"], 2),
                _f(t["p50_ms"], 2),
                _f(o["images_per_s"], 0),
                _f(t["images_per_s"], 0),
                f"{t['p50_ms'] / o['p50_ms']:.2f}×",
            ]
        )
    return [
        "## Model in process: onnxruntime vs PyTorch eager",
        "",
        "Same untrained weights on both sides, same input arrays, same intra-op thread count, timed in "
        "alternating slices. `decode` = texture + deformation graphs; `reconstruct` = all four graphs chained. "
        "Latencies are medians per call.",
        "",
        *_table(["path", "N", "batch", "ORT p50 ms", "eager p50 ms", "ORT img/s", "eager img/s", "ORT speed-up"], rows),
        "",
        f"![model throughput]({fig})",
        "",
    ]


def service_section(result: Result, fig: str) -> list[str]:
    s = result["service"]
    rows = []
    for r in s["rows"]:
        batch = ", ".join(f"{q} {v:.1f}" for q, v in sorted(r["avg_batch"].items()))
        model = sum(v for v in r["model_ms"].values() if not math.isnan(v))
        errors = ", ".join(f"{k}: {v}" for k, v in r["non_2xx"].items()) or "0"
        rows.append(
            [
                r["endpoint"],
                r["batching"],
                str(r["clients"]),
                str(r["images_per_request"]),
                _f(r["images_per_s"], 0),
                _f(r["p50_ms"]),
                _f(r["p95_ms"]),
                _f(r["p99_ms"]),
                batch or "–",
                _f(r["server_ms"]),
                _f(r["queue_ms"]),
                _f(model),
                f"{r['model_busy']:.2f}",
                errors,
            ]
        )
    peaks = ", ".join(f"batching {k}: {v:.0f} MiB" for k, v in s["peak_rss_mib"].items())
    return [
        "## Service under load",
        "",
        f"Bundle `{s['bundle']}` ({s['image_size']}×{s['image_size']}), payload: {s['payload']}. Each cell: "
        f"a separate `python -m bench.loadgen` process, closed loop, at most {s['settings']['seconds']:g} s and "
        f"{s['settings']['max_requests']} requests. Batching on = `DAE_MAX_BATCH=32 DAE_MAX_WAIT_MS=0` (the "
        "defaults: a batch starts as soon as the model is free, and whatever queued meanwhile rides in it); "
        "off = `DAE_MAX_BATCH=1 DAE_MAX_WAIT_MS=0` (a multi-image request is still one batch); "
        "on-wait2 = `DAE_MAX_BATCH=32 DAE_MAX_WAIT_MS=2` (the oldest item also waits up to 2 ms for company). "
        "`server ms` is the server's own request histogram, `queue ms` the batcher queues, `model ms` the "
        "graphs' time per batch, `busy` model-seconds per second of wall time.",
        "",
        f"Peak RSS of the server (VmHWM): {peaks}.",
        "",
        *_table(
            [
                "endpoint",
                "batching",
                "clients",
                "img/req",
                "img/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "avg batch",
                "server ms",
                "queue ms",
                "model ms",
                "busy",
                "non-2xx",
            ],
            rows,
        ),
        "",
        f"![service]({fig})",
        "",
    ]


def training_section(result: Result, fig: str) -> list[str]:
    rows = [
        [
            f"{r['image_size']}",
            f"{r['batch']}",
            _f(r["ours_images_per_s"]),
            _f(r["release_images_per_s"]),
            f"{r['speedup']:.2f}×",
            f"{r['integrator_max_abs_diff']:.1e}",
            str(r["steps_timed"]),
        ]
        for r in result["training"]
    ]
    return [
        "## Training",
        "",
        "Full optimiser steps (forward, loss, backward, Adam) on a fixed random batch, no data loading. *Ours*: "
        "`training.model` + `training.losses.dae_loss` (cumsum integrator, mean-reduced losses). *Release port*: "
        "`bench/release_step.py`, the authors' step (all-ones transposed-convolution integrator, summed TV × 1e-6, "
        "L1 mean reconstruction, bias-reduce MSE × 1e-2, two Adam optimisers) around the same nets.",
        "",
        *_table(
            ["N", "batch", "ours img/s", "release img/s", "ours / release", "integrator max |Δ|", "steps timed"], rows
        ),
        "",
        f"![training]({fig})",
        "",
    ]


def memory_section(result: Result, fig: str) -> list[str]:
    m = result["service"]["memory"]
    return [
        "## Memory under sustained load",
        "",
        f"{m['seconds']:.0f} s of `/reconstruct` ({m['clients']} clients × {m['images_per_request']} images per "
        f"request, batching on), {m['requests']} requests, non-2xx: {m['non_2xx'] or 0}. RSS sampled every second "
        f"from `/proc/<pid>/status`: first quarter (after a 10 % warm-up) {m['first_quarter_mib']:.1f} MiB, last "
        f"quarter {m['last_quarter_mib']:.1f} MiB, fitted slope {m['slope_mib_per_min']:+.2f} MiB/min, peak "
        f"{m['peak_mib']:.1f} MiB.",
        "",
        f"![memory]({fig})",
        "",
    ]


def plot_model(result: Result, path: Path) -> None:
    sizes = sorted({r["image_size"] for r in result["model"]})
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4.2), squeeze=False)
    for ax, size in zip(axes[0], sizes, strict=True):
        for p in sorted({r["path"] for r in result["model"]}):
            for backend, style in (("onnxruntime", "-"), ("torch", "--")):
                rs = sorted(
                    (
                        r
                        for r in result["model"]
                        if r["image_size"] == size and r["path"] == p and r["backend"] == backend
                    ),
                    key=lambda r: r["batch"],
                )
                ax.plot(
                    [r["batch"] for r in rs], [r["images_per_s"] for r in rs], style, marker="o", label=f"{p} {backend}"
                )
        ax.set(xscale="log", yscale="log", xlabel="batch", ylabel="images/s", title=f"{size}×{size} in process")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_service(result: Result, path: Path) -> None:
    rows = [r for r in result["service"]["rows"] if r["endpoint"] in ("encode", "reconstruct")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for endpoint in ("encode", "reconstruct"):
        for mode in sorted({r["batching"] for r in rows}):
            for ipr in sorted({r["images_per_request"] for r in rows}):
                rs = sorted(
                    (
                        r
                        for r in rows
                        if r["endpoint"] == endpoint and r["batching"] == mode and r["images_per_request"] == ipr
                    ),
                    key=lambda r: r["clients"],
                )
                label = f"/{endpoint} batching {mode}, {ipr} img/req"
                style = {"on": "-", "off": "--"}.get(mode, ":")
                axes[0].plot(
                    [r["clients"] for r in rs], [r["images_per_s"] for r in rs], style, marker="o", label=label
                )
                axes[1].plot([r["clients"] for r in rs], [r["p99_ms"] for r in rs], style, marker="o", label=label)
    axes[0].set(xscale="log", xlabel="concurrent clients", ylabel="images/s", title="service throughput")
    axes[1].set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="p99 latency (ms)", title="p99 latency")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training(result: Result, path: Path) -> None:
    rs = result["training"]
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = range(len(rs))
    ax.bar([x - 0.2 for x in xs], [r["ours_images_per_s"] for r in rs], 0.4, label="ours")
    ax.bar([x + 0.2 for x in xs], [r["release_images_per_s"] for r in rs], 0.4, label="release port")
    ax.set_xticks(list(xs), [f"{r['image_size']}×{r['image_size']}" for r in rs])
    ax.set(ylabel="training images/s", title="training step throughput")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_memory(result: Result, path: Path) -> None:
    samples = result["service"]["memory"]["samples"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([t for t, _ in samples], [m for _, m in samples], marker=".")
    ax.set(xlabel="seconds under load", ylabel="server RSS (MiB)", title="server memory under sustained load")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _parts_line(result: Result) -> list[str]:
    """When parts were measured at different times (``--only`` merged with an earlier run), say which when."""
    parts = result.get("parts") or {}
    when = {(v["started"], v["command"]) for v in parts.values()}
    if len(when) <= 1:
        return []
    by: dict[tuple[str, str], list[str]] = {}
    for part, v in parts.items():
        by.setdefault((v["started"], v["command"]), []).append(part)
    said = "; ".join(f"{', '.join(ps)} on {started} (`{cmd}`)" for (started, cmd), ps in sorted(by.items()))
    return [f"Parts measured: {said}.", ""]


def write_report(result: Result, out: Path) -> Path:
    """Write ``out/benchmarks.md`` and ``out/figures/bench_*.png``; return the report's path."""
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    m = result["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{result['command']}` (profile `{result['profile']}`) on {result['started']}, "
        f"{result['wall_s'] / 60:.1f} min. Do not edit by hand: rerun the command.",
        "",
        *_parts_line(result),
        "## Machine",
        "",
        f"{m['cpu']}, {m['cores']} cores, {_f(m['memory_gib'])} GiB RAM, {m['os']}; Python {m['python']}, "
        f"torch {m['torch']}, onnxruntime {m['onnxruntime']}, FastAPI {m['fastapi']}, uvicorn {m['uvicorn']}. "
        f"Load average at start: {', '.join(f'{x:.2f}' for x in m['load_average_at_start'] or [])}. "
        f"Threads: {result['threads']} intra-op for both onnxruntime and PyTorch; spinning off on both "
        "(`session.intra_op.allow_spinning=0`, `OMP_WAIT_POLICY=PASSIVE`). The load generator runs on the same "
        "cores as the server.",
        "",
        f"**GPU**: {m['gpu']}. The GPU benchmarks of the issue (§3) were not run: this machine has no GPU.",
        "",
    ]
    lines += targets_section(all_targets(result))
    if result.get("model"):
        plot_model(result, figures / "bench_model.png")
        lines += model_section(result, "figures/bench_model.png")
    if result.get("service"):
        plot_service(result, figures / "bench_service.png")
        plot_memory(result, figures / "bench_memory.png")
        lines += service_section(result, "figures/bench_service.png")
        lines += memory_section(result, "figures/bench_memory.png")
    if result.get("http"):
        from bench.http_report import plot as plot_http
        from bench.http_report import section as http_section

        plot_http(result["http"], figures / "bench_http.png")
        lines += http_section(result["http"], "figures/bench_http.png")
    if result.get("oip"):
        from bench.oip_bench import section as oip_section

        lines += oip_section(result["oip"])
    if result.get("training"):
        plot_training(result, figures / "bench_training.png")
        lines += training_section(result, "figures/bench_training.png")
    lines += ["## Where the time goes", "", *FINDINGS, ""]
    report = out / "benchmarks.md"
    report.write_text("\n".join(lines))
    return report
