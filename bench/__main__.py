"""``python -m bench``: run every benchmark and write the report.

    python -m bench --profile full --out docs          # make bench: about 15 minutes on 2 cores
    python -m bench --profile ci --out build/bench-ci  # make bench-ci: tiny settings, well under a minute
    python -m bench --profile full --only model training --out /tmp/b

Raw numbers go to ``OUT/benchmarks.json`` (and ``WORK/result.json``), the report to ``OUT/benchmarks.md`` and
its figures to ``OUT/figures/bench_*.png``. With ``--only``, the parts not run are taken from an earlier
``OUT/benchmarks.json`` of the same profile, so rerunning one part updates its section and keeps the others;
the report says when each part was measured, and by which command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.timing import Budget, machine

PARTS = ("training", "model", "service", "oip", "http")


@dataclass(frozen=True)
class Profile:
    sizes: tuple[int, ...]
    batches: tuple[int, ...]
    model_budget: Budget
    train_sizes: tuple[int, ...]
    train_batch: int
    train_budget: Budget
    service: dict[str, Any] = field(default_factory=dict)
    oip: dict[str, Any] = field(default_factory=dict)  # bench/oip_bench.py: OIP (binary, JSON) vs REST (PNG)
    http: dict[str, Any] = field(default_factory=dict)  # bench/http_bench.py: floor, service, peers under wrk


PROFILES: dict[str, Profile] = {
    "full": Profile(
        sizes=(32, 64),
        batches=(1, 4, 16, 64, 256),
        model_budget=Budget(4, 0.25, 2),
        train_sizes=(32, 64),
        train_batch=64,
        train_budget=Budget(4, 2.0, 2),
        service=dict(
            clients=(1, 4, 16, 32, 64),
            images_per_request=(1, 8),
            seconds=5.0,
            memory_seconds=120.0,
            memory_clients=16,
            rendered_clients=16,
        ),
        oip=dict(clients=(1, 8), images_per_request=(1, 8), seconds=5.0),
        # 5 rounds: one server's cells here swing by up to 1.6x from one round to the next (machine state);
        # the best of five is less often a bad one, for every server alike.
        http=dict(connections=(1, 16), seconds=5.0, rounds=5, storm=(4, 10)),
    ),
    "ci": Profile(
        sizes=(32,),
        batches=(1, 4),
        model_budget=Budget(1, 0.0, 2),
        train_sizes=(32,),
        train_batch=4,
        train_budget=Budget(1, 0.0, 1),
        service=dict(
            clients=(1, 4),
            images_per_request=(1, 2),
            seconds=0.4,
            max_requests=200,
            memory_seconds=3.0,
            memory_clients=2,
            rendered_clients=2,
            modes=("on", "off"),
        ),
        oip=dict(clients=(1,), images_per_request=(2,), seconds=0.3, max_requests=20, rounds=1),
        # no LitServe (its virtualenv takes minutes to make) and no storm: bench-ci stays fast
        http=dict(
            connections=(1, 4),
            seconds=1.0,
            rounds=1,
            warmup=0.0,
            storm=(),
            servers=("floor", "service", "service-2", "minimal"),
        ),
    ),
}


def run(profile: str, out: Path, work: Path, only: tuple[str, ...] = PARTS, progress: bool = True) -> Path:
    """Run the chosen parts with ``profile``'s settings; write the report; return its path."""
    from bench.bundles import bundle_for
    from bench.model_bench import bench_model
    from bench.model_bench import to_json as model_json
    from bench.report import write_report
    from bench.service_bench import ServiceSettings, bench_service
    from bench.training_bench import bench_training
    from bench.training_bench import to_json as training_json

    p = PROFILES[profile]

    def say(message: str) -> None:
        if progress:
            print(message, flush=True)

    threads = os.cpu_count() or 1
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "profile": profile,
        "command": "python -m bench " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "",
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "threads": threads,
        "settings": asdict(p),
    }
    if profile == "full" and out == Path("docs"):
        result["command"] = "make bench"
    bundles = work / "bundles"
    if "training" in only:
        say("[bench] training: ours vs release port")
        result["training"] = training_json(bench_training(p.train_sizes, p.train_batch, p.train_budget, threads))
    if "model" in only:
        say("[bench] model in process: onnxruntime vs eager")
        result["model"] = model_json(bench_model(p.sizes, p.batches, bundles, p.model_budget, threads))
    if "service" in only:
        say("[bench] service under load")
        result["service"] = bench_service(bundle_for(32, bundles), work, ServiceSettings(**p.service), progress)
    if "http" in only:
        from bench.http_bench import HttpSettings, bench_http, http_bundle

        say("[bench] http: floor, service and peers under wrk")
        result["http"] = bench_http(http_bundle(bundles), work / "http", HttpSettings(**p.http), say)
    if "oip" in only:
        from bench.oip_bench import OipSettings, bench_oip

        say("[bench] Open Inference Protocol vs REST")
        result["oip"] = bench_oip(bundle_for(32, bundles), work, OipSettings(**p.oip), progress)
    result["wall_s"] = time.perf_counter() - t0
    result["parts"] = {part: {"started": result["started"], "command": result["command"]} for part in only}
    merge_earlier(result, out / "benchmarks.json", only, say)
    work.mkdir(parents=True, exist_ok=True)
    (work / "result.json").write_text(json.dumps(result, indent=1))
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(result, indent=1) + "\n")
    report = write_report(result, out)
    say(f"[bench] wrote {report} in {result['wall_s']:.0f} s")
    return report


def merge_earlier(result: dict[str, Any], earlier: Path, only: tuple[str, ...], say: Any) -> None:
    """Fill the parts not run now from an earlier result of the same profile (kept with their dates)."""
    if set(only) >= set(PARTS) or not earlier.is_file():
        return
    old = json.loads(earlier.read_text())
    if old.get("profile") != result["profile"]:
        say(f"[bench] {earlier} is of profile {old.get('profile')!r}: its parts are not merged")
        return
    whole_run = {"started": old["started"], "command": old["command"]}  # an earlier result without "parts"
    old_parts = old.get("parts") or {}
    for part in PARTS:
        if part not in only and part in old:
            result[part] = old[part]
            result["parts"][part] = old_parts.get(part, whole_run)
            say(f"[bench] {part}: kept from {result['parts'][part]['started']}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="full", help="(default: full)")
    ap.add_argument("--out", type=Path, default=Path("docs"), help="report folder (default: docs)")
    ap.add_argument("--work", type=Path, default=Path("build/bench"), help="bundles, logs, raw JSON")
    ap.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="(default: all parts)")
    args = ap.parse_args(argv)
    run(args.profile, args.out, args.work, tuple(args.only))


if __name__ == "__main__":
    main()
