"""The benchmark scripts cannot rot: a CI-sized run of the real code writes its report, and the pieces it is
built from (release-port step, timing, metrics parsing, memory analysis, loadgen guards) do what they claim.

    .venv/bin/python -m pytest tests/bench -x -q      # about 50 s on 2 cores (the smoke run starts 4 servers)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from bench import loadgen
from bench.__main__ import run
from bench.metrics import parse_batches, parse_histogram
from bench.release_step import ReleaseStep, bias_reduce_loss, total_vary_loss
from bench.service_bench import memory_growth
from bench.targets import Target
from bench.timing import Budget, interleaved, percentile
from bench.training_bench import integrator_agreement
from training.losses import bias_reduction, total_variation


@pytest.mark.slow
def test_ci_run_writes_the_report_with_every_target(tmp_path: Path) -> None:
    report = run("ci", tmp_path / "docs", tmp_path / "work", progress=False)
    text = report.read_text()
    for needle in (
        "## Machine",
        "## Targets",
        "no GPU",
        "70 % of in-process",
        "+ 3 ms",
        "1.5 × PyTorch eager",
        "batching on ≥ 1.3",
        "memory flat",
        "## Model in process",
        "## Service under load",
        "## Training",
        "## Memory under sustained load",
        "## Open Inference Protocol beside the REST API",
        "## HTTP: floor, service, peers (wrk)",
    ):
        assert needle in text, needle
    for name in ("model", "service", "memory", "training"):
        with Image.open(tmp_path / "docs" / "figures" / f"bench_{name}.png") as im:
            assert im.size[0] > 300 and im.size[1] > 200
    result = json.loads((tmp_path / "work" / "result.json").read_text())
    rows = result["service"]["rows"]
    assert rows and all(r["requests"] > 0 and not r["non_2xx"] for r in rows)
    # The server really batched: several clients of one image each formed batches larger than one.
    on4 = [r for r in rows if r["batching"] == "on" and r["clients"] == 4 and r["endpoint"] == "encode"]
    assert on4 and max(r["avg_batch"]["encode"] for r in on4) > 1.0
    off = [r for r in rows if r["batching"] == "off" and r["images_per_request"] == 1 and "encode" in r["avg_batch"]]
    assert off and all(r["avg_batch"]["encode"] == 1.0 for r in off)
    assert {r["backend"] for r in result["model"]} == {"onnxruntime", "torch"}
    assert all(r["images_per_s"] > 0 for r in result["model"] + result["training"] if "images_per_s" in r)
    assert result["training"][0]["ours_images_per_s"] > 0 and result["training"][0]["release_images_per_s"] > 0
    assert len(result["service"]["memory"]["samples"]) >= 2
    http = result["http"]  # wrk against the floor, the service (1 and 2 workers), the minimal server; outputs equal
    assert set(http["runs"]) == {"floor", "service", "service-2", "minimal"}
    assert all(
        cell["requests"] > 0 and not cell["non_2xx"] and cell["cores"] > 0 and cell["load_cores"] > 0
        for server in http["runs"].values()
        for ep in server.values()
        for cell in ep.values()
    )
    diff = http["output_max_abs_diff"]
    assert diff["service"] == diff["service-2"] == 0.0 and diff["minimal"] < 1e-5
    # /metrics of the two-worker service counted the decoder batches of both (read between wrk runs)
    assert all(b >= 1.0 for b in http["service_decode_batch"]["service-2"].values())
    oip = result["oip"]["rows"]  # every protocol answered, all 200
    assert {r["protocol"] for r in oip} == {"rest-png", "oip-binary", "oip-json"}
    assert all(r["requests"] > 0 and not r["non_2xx"] for r in oip)
    # Rerunning one part keeps the others from OUT/benchmarks.json and says when each was measured.
    earlier = json.loads((tmp_path / "docs" / "benchmarks.json").read_text())
    again = run("ci", tmp_path / "docs", tmp_path / "work2", only=("training",), progress=False).read_text()
    merged = json.loads((tmp_path / "docs" / "benchmarks.json").read_text())
    assert merged["model"] == earlier["model"] and merged["http"] == earlier["http"]
    assert merged["training"] != earlier["training"]  # measured again
    assert "## HTTP: floor, service, peers (wrk)" in again and "## Model in process" in again
    if merged["parts"]["training"]["started"] != merged["parts"]["model"]["started"]:  # a minute apart
        assert "Parts measured:" in again


def test_release_integrator_equals_cumsum() -> None:
    assert integrator_agreement(32) < 1e-5
    assert integrator_agreement(64) < 1e-5


def test_release_losses_are_the_summed_forms_of_ours() -> None:
    res = torch.rand(3, 2, 8, 8, generator=torch.Generator().manual_seed(1)) - 0.5
    diffs = 2 * 2 * 3 * 8 * 7  # (x and y) × channels × batch × N × (N - 1)
    assert float(total_vary_loss(res, 1e-6)) == pytest.approx(1e-6 * diffs * float(total_variation(res)), rel=1e-5)
    assert float(bias_reduce_loss(res, 1e-2)) == pytest.approx(1e-2 * float(bias_reduction(res)), rel=1e-5)


def test_release_step_trains() -> None:
    torch.manual_seed(0)
    step = ReleaseStep(32)
    x = torch.rand(4, 1, 32, 32)
    losses = [step(x) for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_interleaved_alternates_the_sides() -> None:
    calls: list[str] = []
    times = interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
        Budget(rounds=3, slice_s=0.0, min_calls=2),
        warmup=1,
    )
    # warm-up a b, then slices a a b b / b b a a / a a b b
    assert calls == ["a", "b", "a", "a", "b", "b", "b", "b", "a", "a", "a", "a", "b", "b"]
    assert len(times["a"]) == len(times["b"]) == 6


def test_percentile() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0], 100) == 2.0
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], 101)


def test_memory_growth_tells_flat_from_leaking() -> None:
    flat = memory_growth([(float(t), 100.0 + (t % 2) * 0.1) for t in range(60)])
    assert abs(flat["growth_mib"]) < 0.2 and abs(flat["slope_mib_per_min"]) < 0.5
    leak = memory_growth([(float(t), 100.0 + 0.5 * t) for t in range(60)])
    assert leak["growth_mib"] > 15 and leak["slope_mib_per_min"] == pytest.approx(30.0)


def test_metrics_parsing() -> None:
    text = "\n".join(
        [
            'dae_batches_total{queue="encode"} 4.0',
            'dae_batch_images_total{queue="encode"} 10.0',
            'dae_inference_seconds_sum{stage="warp"} 0.5',
            'dae_inference_seconds_count{stage="warp"} 2.0',
            'dae_request_duration_seconds_sum{endpoint="/encode",method="POST",status="200"} 1.5',
            'dae_request_duration_seconds_count{endpoint="/encode",method="POST",status="200"} 3.0',
            'dae_request_duration_seconds_count{endpoint="/encode",method="POST",status="429"} 1.0',
        ]
    )
    assert parse_batches(text) == {"encode": (4.0, 10.0)}
    assert parse_histogram(text, "dae_inference_seconds") == {"warp": (0.5, 2.0)}
    assert parse_histogram(text, "dae_request_duration_seconds") == {"/encode": (1.5, 4.0)}


def test_targets_compare_in_the_stated_direction() -> None:
    assert Target("t", "c", "m", 1.6, 1.5).met
    assert not Target("t", "c", "m", 1.4, 1.5).met
    assert Target("t", "c", "m", 2.0, 3.0, higher_is_better=False).met
    assert not Target("t", "c", "m", float("nan"), 1.0).met


def test_loadgen_refuses_non_loopback_and_empty_payloads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.png").write_bytes(b"not really a png; never sent")
    assert loadgen.main(["--url", "http://192.0.2.1:8000/encode", "--images", str(tmp_path)]) == 2
    assert "only targets loopback" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert loadgen.main(["--url", "http://127.0.0.1:9/encode", "--images", str(empty)]) == 2
    assert "no *.png" in capsys.readouterr().err
