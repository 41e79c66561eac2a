"""Benchmarks: model in process (onnxruntime vs PyTorch eager), the HTTP service under load, and training.

One command runs everything and writes ``docs/benchmarks.md`` plus ``docs/figures/bench_*.png``::

    make bench                      # full run, about 15-20 minutes on 2 CPU cores
    make bench-ci                   # the same code with tiny settings, well under a minute
    python -m bench --profile full --out docs
    python -m bench --profile ci --out /tmp/bench-ci

Every comparison (onnxruntime vs eager, ours vs the release's training step, batching on vs off) is measured
inside one run with the two sides interleaved, because the machines are shared and their speed drifts.
"""

import os as _os

# Both sides of every comparison sleep between calls instead of spinning: onnxruntime through its session
# option, PyTorch's OpenMP pool through this variable, which libgomp reads once, when torch is first imported
# (hence here, before any bench module imports torch). With spinning on, a 2-core machine shared with other
# processes made eager PyTorch 5x slower at batch 1 (idle threads spinning against descheduled ones).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
