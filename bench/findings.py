"""What profiling found: the reason for each missed target, and where the time goes in the service.

Written from profiles of the real server on the 2-core development machine (py-spy sampling every thread of
``python -m service`` under ``python -m bench.loadgen``; the numbers in brackets are from those profiles, the
report's tables hold this run's). To profile again::

    py-spy record -p <server pid> --idle --threads -f raw -r 200 -d 8 -o prof.txt   # while a load cell runs

The report prints a reason only for a target this run missed.
"""

from __future__ import annotations

REASONS: dict[str, str] = {
    "service throughput at 64 clients ≥ 70 % of in-process onnxruntime's best": (
        "the service is bound by per-request Python work, not by the model. In process, the 32×32 encoder runs "
        "thousands of images/s at large batches; behind HTTP each request costs event-loop CPU (httptools "
        "parsing, Starlette's multipart parser for these multipart uploads, the JSON answer, metrics and the "
        "access log) plus a PNG decode in a worker, all on the same 2 cores as the Python load generator. "
        "The `busy` column shows the model "
        "idle most of the time. Several images per request amortise that cost, which is why those rows do "
        "better, and /reconstruct (heavier decoders) comes closer than /encode. What is left needs more cores "
        "than one event loop can use: several server processes (the compose `scaled` profile, one replica per "
        "core) or clients that send several images per request."
    ),
    "service p50 at 1 client ≤ in-process batch-1 latency + 3 ms": (
        "the batcher adds no wait by default (`DAE_MAX_WAIT_MS=0`: a lone request runs at once, on the event "
        "loop, with no hand-off to a worker thread); mode `on-wait2` shows what a 2 ms wait per queue costs "
        "(see the `queue ms` column: a positive wait also turns the inline run off, every request waits for "
        "company). Modes `on` and `off` take the same path at one client (a batch of one, inline), so a gap "
        "between them is the shared machine's noise. What remains is HTTP, PNG decoding and the answer "
        "(about 1 ms of Python per /reconstruct, see the HTTP section)."
    ),
    "onnxruntime ≥ 1.5 × PyTorch eager at batch 1": (
        "expected for the `warp` graph only, which is two CumSums, a Clip and one GridSample: in eager PyTorch "
        "these are a handful of ATen kernels with microseconds of dispatch, so there is no framework overhead "
        "for onnxruntime to remove and both take about 0.1 ms. The export pays off where the work is, the "
        "encoder and decoders (convolutions), and on the full reconstruct path. A miss on another path would "
        "be noise from the shared machine: compare its p95 and rerun."
    ),
    "batching on ≥ 1.3 × batching off at 32 clients on CPU": (
        "batching saves the model's per-call cost, and at 32×32 that cost is small next to the per-request HTTP "
        "cost, so a larger batch cannot buy much: /encode gains least (the encoder takes a fraction of a "
        "millisecond per call), /reconstruct more (four graphs per call). With 2 cores onnxruntime also gets "
        "little extra parallelism from a bigger batch."
    ),
    "server memory flat under sustained load": (
        "onnxruntime's CPU arena grows to the largest batch shape it has seen and keeps it; growth that stops "
        "once every batch size has occurred is this, not a leak (see the memory plot: a step, then flat). A "
        "steady slope to the end of the run would be a leak: rerun with a longer `memory_seconds` to tell."
    ),
}

FINDINGS: list[str] = [
    "- **Spinning threads.** With onnxruntime's and OpenMP's default spin-waiting, idle pool threads spin "
    "while the other side runs; on 2 shared cores that made eager PyTorch about 5× slower at batch 1 "
    "(120 ms vs 23 ms for encode + forward). Every measurement here runs with spinning off on both sides "
    "(`session.intra_op.allow_spinning=0`, which the service also sets, and `OMP_WAIT_POLICY=PASSIVE`).",
    "- **The service at one client** (py-spy, /encode, raw PNG body): a lone request runs on the event loop "
    "(no thread hand-off); of the loop's time uvicorn writing the answer takes about a quarter, httptools "
    "parsing a tenth, the rest is the use case: PNG decoding (0.13-0.18 ms), the encoder (about 0.2 ms at "
    "batch 1), softmax and the latent code (0.03 ms each), metrics and the access log.",
    "- **Two batches at once** (`DAE_BATCH_LOOPS`, one per core on CPU): two concurrent `session.run` of the "
    "fused decoder do about 900-1000 images/s on the 2 cores where one run on 2 intra-op threads does "
    "530-660 (batch 1 to 16): the small graphs do not split well over intra-op threads.",
    "- **The .npz**: `np.savez` of /reconstruct's nine arrays took about 0.4 ms, half of the event loop's "
    "time per request at 16 connections (py-spy); the service writes the same members in one pass in "
    "0.08 ms (service/render.py).",
    "- **The service under load**: `busy` stays well below 1 for /encode, so more clients add queueing, not "
    "throughput; the one event loop is the bottleneck (one process used about 1.2 of the 2 cores). For "
    "/reconstruct the four graphs are a larger share. `DAE_WORKERS=2` (one event loop per core, "
    "service/workers.py) is what used the rest: see the HTTP section.",
    "- **Pictures cost more than the model**: the default /reconstruct (JSON with every picture as a PNG) "
    "is several times slower than `outputs=reconstruction&format=npz` at the same load; ask only for the "
    "outputs you need.",
    "- **Training**: our step and the release port run the same nets; the integrator (cumsum vs an all-ones "
    "transposed convolution) is a small share of a training step at 32×32 and 64×64 on CPU, so the two are "
    "within noise of each other there; the transposed convolution's O(N) work per pixel matters more at "
    "128×128 and on GPU.",
]
