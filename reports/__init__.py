"""Reports built from trained models: ``python -m reports`` writes docs/results.md and its figures.

It sits above the trainer (it imports ``training``; nothing imports it), so the trainer package holds no
documentation prose.
"""
