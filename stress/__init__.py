"""Load, overload, soak and fault drivers for the inference service (loopback only, bounded in count and time).

    make stress                                  # full run → docs/reliability.md + docs/figures/reliability_*.png
    .venv/bin/python -m stress --profile quick   # seconds; the same code, tiny numbers

The quick parts of the same code run in ``make test`` (tests/stress/test_overload.py).
"""
