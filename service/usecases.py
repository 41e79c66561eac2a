"""What the product endpoints do, in one layer over the engine, free of HTTP: the routes only translate.

    cases = UseCases(engine)
    enc = await cases.encode(files, deadline)                        # files: [(label, image bytes)]
    out = await cases.reconstruct(files, deadline, klass="7")        # class override (class-aware models)
    out = await cases.swap(shape_file, appearance_file, deadline)
    out = await cases.decode([LatentInput(code=...)], deadline)
    out = await cases.interpolate(start, end, steps=8, factor="shape", deadline=...)

Each returns plain data (latents, outputs, per-item fields, a Server-Timing value); errors are the
``service.errors`` tree. Image files are decoded inside the encode batch's worker thread (``Engine.encode_files``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from bundle.layout import Arrays
from service.engine import Engine, server_timing
from service.errors import PayloadTooLargeError, UnprocessableError
from service.schemas import LatentInput

Factor = Literal["shape", "appearance", "both"]
# What moves between the two ends of an interpolation; what does not move stays at the start.
MOVES: dict[str, tuple[str, ...]] = {
    "shape": ("shape",),
    "appearance": ("appearance", "shading_latent"),
    "both": ("shape", "appearance", "shading_latent", "class_code"),
}


@dataclass
class Decoded:
    """Decoder outputs for some latent rows, with the rows themselves and per-item JSON fields."""

    outputs: Arrays
    latents: Arrays
    items: list[dict[str, Any]]
    timing: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Encoded:
    items: list[dict[str, Any]]
    timing: str


class UseCases:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.class_names = engine.manifest.class_names
        self.has_shape = any(name == "shape" for name, _ in engine.latent_parts)

    def _check_count(self, n: int, what: str = "images", code: str = "too_many_images") -> None:
        limit = self.engine.settings.max_images_per_request
        if n > limit:
            raise PayloadTooLargeError(f"{n} {what} exceed the limit of {limit}", code)

    def class_override(self, klass: str | None) -> np.ndarray | None:
        """``class=`` of a request: the chosen class's one-hot ``(1, K)``, or None (keep the predicted ones)."""
        return None if klass is None else self.engine.class_code_for(klass)

    # -- images in -----------------------------------------------------------------------------------------
    async def encode(self, files: list[tuple[str, bytes]], deadline: float) -> Encoded:
        """Images → per image shape and appearance latents, class probabilities, a latent code."""
        self._check_count(len(files))
        e = self.engine
        lat, info = await e.encode_files(files, deadline)
        n = len(files)
        # Whole-batch conversions (one tolist per array, not one per row): this runs on the event loop.
        shapes = lat["shape"].tolist() if "shape" in lat else [[] for _ in range(n)]
        appearances, codes = lat["appearance"].tolist(), e.codes_for(lat)
        shadings = lat["shading_latent"].tolist() if "shading_latent" in lat else None
        probs = lat.get("class_code")
        probs_l, best = (probs.tolist(), probs.argmax(axis=1).tolist()) if probs is not None else (None, None)
        items: list[dict[str, Any]] = []
        for i in range(n):
            item: dict[str, Any] = {"index": i, "shape": shapes[i], "appearance": appearances[i]}
            if shadings is not None:
                item["shading"] = shadings[i]
            if probs_l is not None and best is not None:
                k = best[i]
                item.update(class_probabilities=probs_l[i], predicted_class=k, predicted_label=self.class_names[k])
            item["code"] = codes[i]
            items.append(item)
        return Encoded(items, server_timing([("encode", info)]))

    async def reconstruct(self, files: list[tuple[str, bytes]], deadline: float, klass: str | None) -> Decoded:
        """Images → texture, deformation, reconstruction (decoded as class ``klass`` when given)."""
        override = self.class_override(klass)
        self._check_count(len(files))
        e = self.engine

        def as_class(lat: Arrays) -> Arrays:  # runs in the encode worker, between the two stages
            assert override is not None  # only used when there is one (below)
            return {**lat, "class_code": np.repeat(override, len(files), axis=0)}

        mix = as_class if override is not None else None
        both, enc_info, dec_info = await e.encode_then_decode(files, deadline, mix)
        lat, outs = self._split(both)
        items = [{"index": i, "code": code} for i, code in enumerate(e.codes_for(lat))]
        return Decoded(outs, lat, items, server_timing([("encode", enc_info), ("decode", dec_info)]))

    def _split(self, both: Arrays) -> tuple[Arrays, Arrays]:
        """encode_then_decode's arrays → (the latent rows decoded, the decoder's outputs)."""
        names = {name for name, _ in self.engine.latent_parts} | {"class_logits"}
        return {k: v for k, v in both.items() if k in names}, {k: v for k, v in both.items() if k not in names}

    async def swap(
        self, shape: tuple[str, bytes], appearance: tuple[str, bytes], deadline: float, klass: str | None
    ) -> Decoded:
        """The shape of one image with the appearance (and shading) of another, as class ``klass`` or as the
        shape image's predicted class probabilities: /decode of the mixed latents."""
        override = self.class_override(klass)
        e = self.engine

        def mix(enc: Arrays) -> Arrays:  # runs in the encode worker, between the two stages
            mixed = {name: enc[name][1:2] for name, _ in e.latent_parts}  # appearance side: appearance, shading
            if "shape" in enc:
                mixed["shape"] = enc["shape"][0:1]
            if "class_code" in enc:
                mixed["class_code"] = override if override is not None else enc["class_code"][0:1]
            return mixed

        both, enc_info, dec_info = await e.encode_then_decode([shape, appearance], deadline, mix)
        mixed, outs = self._split(both)
        items: list[dict[str, Any]] = [{"index": 0, "code": e.code_for(mixed, 0)}]
        return Decoded(outs, mixed, items, server_timing([("encode", enc_info), ("decode", dec_info)]))

    # -- latents in ----------------------------------------------------------------------------------------
    def resolve(self, lat: LatentInput, field: str) -> Arrays:
        """A code or explicit values → one latent row (each ``(1, D)``)."""
        e = self.engine
        if lat.code is not None:
            if any(v is not None for v in (lat.shape, lat.appearance, lat.shading)):
                raise UnprocessableError(f"{field}: give a code or explicit values, not both", "latent_ambiguous")
            row = e.from_code(lat.code, f"{field}.code")
            if lat.klass is not None:
                row["class_code"] = e.class_code_for(lat.klass, f"{field}.class")
            return row
        return e.from_values(field, lat.shape, lat.appearance, lat.shading, lat.klass)

    async def decode(self, latents: list[LatentInput], deadline: float) -> Decoded:
        """Latents (codes from /encode or explicit values) → decoder outputs."""
        self._check_count(len(latents), "latents", "too_many_latents")
        e = self.engine
        rows = [self.resolve(lat, f"latents[{i}]") for i, lat in enumerate(latents)]
        stacked = {name: np.concatenate([r[name] for r in rows]) for name, _ in e.latent_parts}
        outs, info = await e.decode(stacked, deadline)
        items = [{"index": i, "code": code} for i, code in enumerate(e.codes_for(stacked))]
        return Decoded(outs, stacked, items, server_timing([("decode", info)]))

    def check_steps(self, steps: int) -> None:
        limit = self.engine.settings.max_steps
        if not 2 <= steps <= limit:
            raise UnprocessableError(f"steps must be between 2 and {limit}, got {steps}", "steps_out_of_range")

    def etag(self, query: list[tuple[str, str]]) -> str:
        """A strong ETag of an interpolation: the model's identity and the sorted query (the frames are a pure
        function of both)."""
        text = self.engine.manifest.sha256 + "?" + "&".join(f"{k}={v}" for k, v in sorted(query))
        return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'

    async def interpolate(self, start: Arrays, end: Arrays, steps: int, factor: Factor, deadline: float) -> Decoded:
        """``z_t = (1 - t) z_start + t z_end``, ``t = i / (steps - 1)`` in float64 (first and last frames are
        exactly the given latents) for the latents ``factor`` moves; all frames are one decoder batch."""
        self.check_steps(steps)
        t = np.linspace(0.0, 1.0, steps)
        t[-1] = 1.0
        latents: Arrays = {}
        for name, _ in self.engine.latent_parts:
            if name in MOVES[factor]:
                za, zb = start[name].astype(np.float64), end[name].astype(np.float64)
                latents[name] = ((1.0 - t)[:, None] * za + t[:, None] * zb).astype(np.float32)
            else:
                latents[name] = np.repeat(start[name], steps, axis=0)
        outs, info = await self.engine.decode(latents, deadline)
        codes = self.engine.codes_for(latents)
        items = [{"index": i, "t": float(t[i]), "code": codes[i]} for i in range(steps)]
        return Decoded(outs, latents, items, server_timing([("decode", info)]))
