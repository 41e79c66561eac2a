"""The HTTP requests behind each client method, and how their answers parse: one place for sync and async.

A ``Call[T]`` says what to send; ``parse`` turns the answer (parsed JSON, or the bytes of a ``raw`` one) into
a ``T``. ``Client`` and ``AsyncClient`` only differ in how they send (see ``api.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from client.results import (
    Encoding,
    ImageInput,
    Result,
    image_bytes,
    parse_encoding,
    parse_result,
)

Factor = Literal["shape", "appearance", "both"]
ClassInput = int | str | None
# A latent for /decode and /interpolate: a code, an Encoding or Result (their code), or explicit values
# {"shape": [...], "appearance": [...], "shading": [...], "class": 3}.
LatentInput = str | Encoding | Result | Mapping[str, Any]
FACTORS = ("shape", "appearance", "both")


T = TypeVar("T")


def json_body(body: Any) -> Any:
    return body


@dataclass
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]  # parsed JSON (or bytes when raw) -> result
    params: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    json: Any = None
    raw: bool = False  # the answer is bytes (gif), not JSON


def get_json(path: str) -> Call[Any]:
    return Call("GET", path, json_body)


def _raw(body: bytes) -> bytes:
    return body


def _results(body: Any) -> list[Result]:
    return [parse_result(i) for i in _items(body)]


def _outputs(params: dict[str, str], outputs: Sequence[str] | str | None) -> dict[str, str]:
    if outputs is not None:
        params["outputs"] = outputs if isinstance(outputs, str) else ",".join(outputs)
    return params


def _files(field_names: Sequence[str], images: Sequence[ImageInput]) -> list[tuple[str, tuple[str, bytes, str]]]:
    # the server identifies the format from the bytes, so the declared type only needs to be an image one
    return [
        (f, (f"{i}.img", image_bytes(img), "image/png"))
        for i, (f, img) in enumerate(zip(field_names, images, strict=True))
    ]


def _batch(images: Sequence[ImageInput]) -> list[ImageInput]:
    if isinstance(images, str | bytes) or not isinstance(images, Sequence):
        raise TypeError("expected a list of images (use the single-image method for one)")
    if not images:
        raise ValueError("no images given")
    return list(images)


def _items(body: Any) -> list[Any]:
    return list(body["items"])


def encode(images: Sequence[ImageInput]) -> Call[list[Encoding]]:
    images = _batch(images)
    return Call(
        "POST",
        "/encode",
        lambda b: [parse_encoding(i) for i in _items(b)],
        files=_files(["images"] * len(images), images),
    )


def reconstruct(
    images: Sequence[ImageInput], outputs: Sequence[str] | str | None, class_: ClassInput
) -> Call[list[Result]]:
    images = _batch(images)
    params = _outputs({"format": "json", "arrays": "both"}, outputs)
    if class_ is not None:
        params["class"] = str(class_)
    return Call("POST", "/reconstruct", _results, params, files=_files(["images"] * len(images), images))


def latent_json(latent: LatentInput, class_: ClassInput = None) -> dict[str, Any]:
    if isinstance(latent, str):
        out: dict[str, Any] = {"code": latent}
    elif isinstance(latent, Encoding | Result):
        if latent.code is None:
            raise ValueError("this result carries no latent code")
        out = {"code": latent.code}
    elif isinstance(latent, Mapping):
        out = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in latent.items()}
    else:
        raise TypeError(f"a latent must be a code, an Encoding, a Result or a dict, not {type(latent).__name__}")
    if class_ is not None:
        out["class"] = class_
    return out


def decode(
    latents: Sequence[LatentInput], outputs: Sequence[str] | str | None, class_: ClassInput
) -> Call[list[Result]]:
    if isinstance(latents, str | Mapping) or not latents:
        raise TypeError("expected a non-empty list of latents")
    body = {"latents": [latent_json(lat, class_) for lat in latents]}
    return Call("POST", "/decode", _results, _outputs({"format": "json", "arrays": "both"}, outputs), json=body)


def swap(
    shape: ImageInput, appearance: ImageInput, outputs: Sequence[str] | str | None, class_: ClassInput
) -> Call[Result]:
    params = _outputs({"format": "json", "arrays": "both"}, outputs)
    if class_ is not None:
        params["class"] = str(class_)
    return Call(
        "POST",
        "/swap",
        lambda b: parse_result(_items(b)[0]),
        params,
        files=_files(["shape", "appearance"], [shape, appearance]),
    )


def _endpoint(params: dict[str, str], which: str, latent: LatentInput) -> None:
    lat = latent_json(latent)
    if "code" in lat:
        params[which] = str(lat["code"])
    for key in ("shape", "appearance", "shading"):
        if lat.get(key) is not None:
            params[f"{which}_{key}"] = ",".join(repr(float(v)) for v in lat[key])
    if lat.get("class") is not None:
        params[f"{which}_class"] = str(lat["class"])


def _interpolate_params(
    start: LatentInput,
    end: LatentInput,
    steps: int,
    factor: Factor,
    outputs: Sequence[str] | str | None,
    class_: ClassInput,
    fmt: str,
) -> dict[str, str]:
    if factor not in FACTORS:
        raise ValueError(f"factor must be one of {FACTORS}, got {factor!r}")
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    params = _outputs({"steps": str(steps), "factor": factor, "format": fmt}, outputs)
    if fmt == "json":
        params["arrays"] = "both"
    _endpoint(params, "start", start)
    _endpoint(params, "end", end)
    if class_ is not None:
        params["start_class"] = params["end_class"] = str(class_)
    return params


def interpolate(
    start: LatentInput,
    end: LatentInput,
    steps: int,
    factor: Factor,
    outputs: Sequence[str] | str | None,
    class_: ClassInput,
) -> Call[list[Result]]:
    params = _interpolate_params(start, end, steps, factor, outputs, class_, "json")
    return Call("GET", "/interpolate", _results, params)


def interpolate_gif(
    start: LatentInput,
    end: LatentInput,
    steps: int,
    factor: Factor,
    outputs: Sequence[str] | str | None,
    class_: ClassInput,
) -> Call[bytes]:
    params = _interpolate_params(start, end, steps, factor, outputs, class_, "gif")
    return Call("GET", "/interpolate", _raw, params, raw=True)
