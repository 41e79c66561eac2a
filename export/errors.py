"""Exporter errors. Bundle-level problems (missing file, checksum, manifest vs graph) are the service's
:class:`bundle.manifest.BundleError`, so both sides report them the same way::

    Exception
    ├── bundle.manifest.BundleError   a bundle that cannot be used as it is on disk
    └── ExportError                    the exporter could not produce a correct bundle
        └── ParityError                onnxruntime disagrees with PyTorch (or batch with single image)
"""

from __future__ import annotations


class ExportError(Exception):
    """The export could not produce a correct bundle; the message says which stage and why."""


class ParityError(ExportError):
    """onnxruntime differs from PyTorch, or batched results from single-image ones, beyond tolerance."""
