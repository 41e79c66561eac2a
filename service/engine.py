"""What the product routes call: batched encode/decode over the two queues, latent codes, and latent checks.

    engine = Engine(settings, Runtime.load(settings), metrics); engine.start()   # inside the event loop
    latents, info = await engine.encode(images, deadline)    # images (B, C, N, N) float32 in [0, 1]
    latents, info = await engine.encode_files(files, deadline)   # [(label, PNG/JPEG/... bytes)]
    outputs, info = await engine.decode(latents, deadline)   # latents by name, each (B, D)

Encoded latents include ``class_code`` = softmax(class_logits) for class-aware models (computed per batch by
the pipeline): that is what their decoders read unless the caller chooses a class (``class_code_for``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bundle.layout import Arrays
from service import imaging
from service.batching import Batcher, BatchInfo, Then
from service.codes import CodeLayout, decode_code, encode_code, encode_codes
from service.config import Settings
from service.errors import UnprocessableError
from service.metrics import Metrics
from service.pipeline import Pipeline, one_hot
from service.runtime import Runtime

LATENT_LIMIT = 1e6  # |value| above this is refused: no encoder produces it and decoders would overflow


class Engine:
    def __init__(self, settings: Settings, runtime: Runtime, metrics: Metrics) -> None:
        self.settings = settings
        self.runtime = runtime
        self.manifest = m = runtime.manifest
        self.pipeline = Pipeline(runtime)
        self.name = settings.model_name or m.name
        # Each queue runs ``loops`` batch loops, one worker thread each (service/batching.py).
        # Auto: one per core on CPU, at most 4 (more loops split the load into ever smaller batches), 1 on CUDA.
        cuda = runtime.primary_provider == "CUDAExecutionProvider"
        loops = settings.batch_loops or (1 if cuda else min(settings.threads, 4))
        self.executor = ThreadPoolExecutor(2 * loops, thread_name_prefix="dae-infer")
        self.latent_parts: list[tuple[str, int]] = [
            (name, size)
            for name, size in (
                ("shape", m.latent_size("shape")),
                ("appearance", m.latent_size("appearance")),
                ("shading_latent", m.latent_size("shading_latent")),
                ("class_code", m.num_classes),
            )
            if size > 0
        ]
        self.layout = CodeLayout.for_model(m.sha256, self.latent_parts)
        kw = dict(
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_ms / 1000.0,
            queue_size=settings.queue_size,
            executor=self.executor,
            loops=loops,
            inline=settings.lone_inline,
            metrics=metrics,
        )
        self.encode_queue = Batcher("encode", self.pipeline.encode, **kw)  # type: ignore[arg-type]
        self.decode_queue = Batcher("decode", self.pipeline.decode, **kw)  # type: ignore[arg-type]

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self.encode_queue.start()
        self.decode_queue.start()

    async def stop(self, timeout_s: float) -> None:
        await self.encode_queue.stop(timeout_s)
        await self.decode_queue.stop(timeout_s)
        self.executor.shutdown(wait=False)

    # -- inference ---------------------------------------------------------------------------------------
    async def encode(self, images: np.ndarray, deadline: float) -> tuple[Arrays, BatchInfo]:
        return await self.encode_queue.submit({"image": images}, len(images), deadline)

    def _prepare(self, files: list[tuple[str, bytes]]) -> Callable[[], Arrays]:
        """The files' decoding, run by the encode worker next to the model (a bad file fails its request alone)."""
        m, limit = self.manifest, self.settings.max_pixels

        def prepare() -> Arrays:
            images = [
                imaging.decode_image(
                    data, size=m.image_size, color_mode=m.preprocessing.color_mode, max_pixels=limit, what=label
                )
                for label, data in files
            ]
            return {"image": images[0][None] if len(images) == 1 else np.stack(images)}

        return prepare

    async def encode_files(self, files: list[tuple[str, bytes]], deadline: float) -> tuple[Arrays, BatchInfo]:
        """Encoded image files (label, bytes) → latents; the files are decoded in the batch's worker thread,
        next to the model, so a request costs no hop of its own (a bad file fails its request alone)."""
        return await self.encode_queue.submit(self._prepare(files), len(files), deadline)

    async def encode_then_decode(
        self, files: list[tuple[str, bytes]], deadline: float, mix: Callable[[Arrays], Arrays] | None = None
    ) -> tuple[Arrays, BatchInfo, BatchInfo]:
        """Image files → their latents, then the decoder's outputs for ``mix(latents)`` (default: the latents
        themselves; ``mix`` runs in the encode worker, e.g. a class override or a shape/appearance swap).

        One wake-up of the caller: the encode worker hands the rows to the decode queue itself. Returns the
        decoded latent rows merged with the decoder's outputs, and each stage's ``BatchInfo``."""

        def feeds(enc: Arrays) -> Arrays:
            lat = enc if mix is None else mix(dict(enc))
            rows = {name: np.ascontiguousarray(lat[name], dtype=np.float32) for name, _ in self.latent_parts}
            if "class_logits" in lat:  # not a decoder input, but part of what /reconstruct returns
                rows["class_logits"] = lat["class_logits"]
            return rows

        out, dec_info = await self.encode_queue.submit(
            self._prepare(files), len(files), deadline, Then(self.decode_queue, feeds)
        )
        assert dec_info.before is not None
        return out, dec_info.before, dec_info

    async def decode(self, latents: Arrays, deadline: float) -> tuple[Arrays, BatchInfo]:
        feeds = {name: np.ascontiguousarray(latents[name], dtype=np.float32) for name, _ in self.latent_parts}
        n = len(next(iter(feeds.values())))
        return await self.decode_queue.submit(feeds, n, deadline)

    # -- latents -----------------------------------------------------------------------------------------
    def code_for(self, latents: Arrays, i: int) -> str:
        return encode_code(self.layout, {k: latents[k][i] for k, _ in self.latent_parts}, self.settings.code_dtype)

    def codes_for(self, latents: Arrays) -> list[str]:
        """Every row's code (rows: the leading axis of each latent array)."""
        return encode_codes(self.layout, {k: latents[k] for k, _ in self.latent_parts}, self.settings.code_dtype)

    def from_code(self, code: str, field: str) -> Arrays:
        """One latent row (each array ``(1, D)``) from a code of this model."""
        return {k: v[None] for k, v in decode_code(self.layout, code, field=field).items()}

    def class_code_for(self, klass: int | str, field: str = "class") -> np.ndarray:
        """The one-hot ``(1, K)`` of a class given by index or by name."""
        names = self.manifest.class_names
        if not names:
            raise UnprocessableError(
                f"{field}: this model ({self.manifest.variant}) has no classes", "class_unsupported"
            )
        if isinstance(klass, str) and not klass.lstrip("-").isdigit():
            if klass not in names:
                raise UnprocessableError(f"{field}: unknown class {klass!r}; classes are {names}", "class_unknown")
            index = names.index(klass)
        else:
            index = int(klass)
            if not 0 <= index < len(names):
                raise UnprocessableError(
                    f"{field}: class index {index} is outside 0..{len(names) - 1}", "class_unknown"
                )
        return one_hot(index, len(names))

    def from_values(
        self,
        field: str,
        shape: Sequence[float] | None,
        appearance: Sequence[float] | None,
        shading: Sequence[float] | None = None,
        klass: int | str | None = None,
    ) -> Arrays:
        """One latent row from explicit values; lengths and finiteness are checked against the manifest."""
        given = {"shape": shape, "appearance": appearance, "shading_latent": shading}
        out: Arrays = {}
        for name, size in self.latent_parts:
            if name == "class_code":
                if klass is None:
                    raise UnprocessableError(
                        f"{field}: a class-aware model needs a class (index or name)", "class_required"
                    )
                out[name] = self.class_code_for(klass, f"{field}.class")
                continue
            values = given.get(name)
            if values is None:
                raise UnprocessableError(f"{field}.{name}: required ({size} values)", "latent_missing")
            out[name] = self.check_values(f"{field}.{name}", values, size)
        extra = [k for k, v in given.items() if v is not None and k not in out]
        if extra:
            raise UnprocessableError(f"{field}: this model has no {extra} latent", "latent_unsupported")
        if klass is not None and "class_code" not in out:
            raise UnprocessableError(
                f"{field}: this model ({self.manifest.variant}) has no classes", "class_unsupported"
            )
        return out

    @staticmethod
    def check_values(field: str, values: Sequence[float], size: int) -> np.ndarray:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.size != size:
            raise UnprocessableError(f"{field}: {arr.size} values given, the model needs {size}", "latent_wrong_length")
        if not np.isfinite(arr).all():
            raise UnprocessableError(f"{field}: values must be finite numbers", "latent_not_finite")
        if np.abs(arr).max(initial=0.0) > LATENT_LIMIT:
            raise UnprocessableError(f"{field}: |value| above {LATENT_LIMIT:g}", "latent_out_of_range")
        return arr.astype(np.float32)[None]


def server_timing(infos: Sequence[tuple[str, BatchInfo]], extra: dict[str, float] | None = None) -> str:
    """``Server-Timing`` header value: queue time per queue, model time per stage, other steps (ms)."""
    parts: list[str] = []
    for queue, info in infos:
        parts.append(f"queue-{queue};dur={info.queue_s * 1000:.3f}")
        parts += [f"{stage};dur={s * 1000:.3f}" for stage, s in info.stages.items()]
    parts += [f"{k};dur={v * 1000:.3f}" for k, v in (extra or {}).items() if math.isfinite(v)]
    return ", ".join(parts)
