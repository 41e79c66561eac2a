"""The bundle contract: what ``export`` writes and ``service`` reads. numpy, Pillow and pydantic only.

    bundle.manifest    the ``manifest.json`` schema, loading and checksum/graph-I/O checks (``BundleError``)
    bundle.layout      each graph's tensor names and shapes derived from a few sizes; ``Arrays``
    bundle.preprocess  how an uploaded picture becomes the encoder's input (the trainer's datasets use it too)

Imports nothing else of this repository (no torch, onnx, onnxruntime or web framework), so the trainer, the
exporter and the service all depend on it and on nothing of each other.
"""
