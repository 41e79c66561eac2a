"""The exporter: a trainer checkpoint -> a verified ONNX bundle the service can load (no torch at serve time).

Public surface (see each module's docstring for the contract)::

    export.bundle.export_bundle(checkpoint, out, *, name=None, opset=17, verify=True, data_dir=None,
                                progress=print, command=None) -> bundle.manifest.Manifest
    export.verify.verify_bundle(bundle_dir, *, checkpoint=None, data_dir=None, batches=(1, 7, 64), real=True,
                                progress=print, providers=("CPUExecutionProvider",)) -> VerifyReport
    bundle.layout.graph_layout(Sizes(...))   every graph's tensor names and shapes, derived from a few sizes
    export.errors.ExportError / ParityError  (bundle problems raise bundle.manifest.BundleError)

    python -m export --checkpoint RUN/last.pt --out DIR [--name NAME] [--data-dir DIR] [--opset N] [--no-verify]
    python -m export verify DIR [--checkpoint RUN/last.pt] [--data-dir DIR]

Importing this package imports nothing; ``export.bundle`` and ``export.verify`` import torch and onnxruntime.
"""
