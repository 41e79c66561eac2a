"""The client against a real server: typed results equal the raw HTTP answers, sync == async, errors typed."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from client import (
    APIError,
    AsyncClient,
    Client,
    Encoding,
    RequestTimeoutError,
    Result,
    RetryPolicy,
    TransportError,
)


def raw_npz(url: str, path: str, **kw: Any) -> dict[str, np.ndarray]:
    r = httpx.post(f"{url}{path}", timeout=30, **kw)
    r.raise_for_status()
    with np.load(io.BytesIO(r.content)) as z:
        return {k: z[k] for k in z.files}


def test_encode_matches_the_raw_api(client_server: Any, digit_files: list[Path]) -> None:
    with Client(client_server.url) as dae:
        one = dae.encode(digit_files[0])
        batch = dae.encode_batch(digit_files[:3])
    raw = httpx.post(
        f"{client_server.url}/encode",
        timeout=30,
        files=[("images", (p.name, p.read_bytes(), "image/png")) for p in digit_files[:3]],
    ).json()
    assert isinstance(one, Encoding) and one.code == raw["items"][0]["code"]
    for enc, item in zip(batch, raw["items"], strict=True):
        assert enc.code == item["code"]
        assert enc.shape.dtype == np.float32 and enc.shape.shape == (8,)
        np.testing.assert_array_equal(enc.shape, np.asarray(item["shape"], np.float32))
        np.testing.assert_array_equal(enc.appearance, np.asarray(item["appearance"], np.float32))
        assert enc.class_probabilities is not None and enc.class_probabilities.shape == (10,)
        assert enc.predicted_class == int(np.argmax(enc.class_probabilities))
        assert enc.predicted_label == str(enc.predicted_class)


def test_reconstruct_arrays_are_exact_and_images_are_pil(client_server: Any, digit_files: list[Path]) -> None:
    with Client(client_server.url) as dae:
        res = dae.reconstruct(digit_files[1])
    exact = raw_npz(
        client_server.url,
        "/reconstruct",
        params={"format": "npz", "outputs": "all"},
        files={"images": ("d.png", digit_files[1].read_bytes(), "image/png")},
    )
    assert isinstance(res, Result) and res.code
    for name in ("texture", "reconstruction", "grid", "displacement"):
        assert res.arrays[name].dtype == np.float32
        np.testing.assert_array_equal(res.arrays[name], exact[name][0])  # JSON floats round-trip float32 exactly
    assert res.texture.shape == res.reconstruction.shape == (1, 32, 32)
    assert res.arrays["grid"].shape == (2, 32, 32)
    assert res.images["reconstruction"].size == (32, 32)
    assert res.images["warped_grid"].size == (128, 128)  # server-side DAE_VIZ_SCALE 4
    assert res.images["warped_grid"].mode == "RGB"


def test_every_input_kind_gives_the_same_latents(
    client_server: Any, digit_files: list[Path], mnist_digits: Any
) -> None:
    arr = mnist_digits[0][2]
    with Client(client_server.url) as dae:
        codes = {
            kind: dae.encode(x).code
            for kind, x in {
                "path": digit_files[2],
                "str": str(digit_files[2]),
                "bytes": digit_files[2].read_bytes(),
                "pil": Image.fromarray(arr),
                "uint8": arr,
                "float": arr.astype(np.float32) / 255.0,
                "hw1": arr[..., None],
            }.items()
        }
    assert len(set(codes.values())) == 1, codes


def test_decode_swap_interpolate(client_server: Any, digit_files: list[Path]) -> None:
    with Client(client_server.url) as dae:
        a, b = dae.encode_batch(digit_files[3:5])
        rec = dae.reconstruct(digit_files[3])
        dec = dae.decode(a)
        np.testing.assert_array_equal(dec.reconstruction, rec.reconstruction)
        by_code = dae.decode(a.code, outputs=["texture"])
        assert set(by_code.arrays) == {"texture"} and not set(by_code.images) - {"texture"}
        explicit = dae.decode({"shape": b.shape, "appearance": a.appearance, "class": 3})
        swapped = dae.swap(digit_files[4], digit_files[3], class_=3)
        np.testing.assert_allclose(swapped.reconstruction, explicit.reconstruction, atol=1e-6)
        frames = dae.interpolate(a, b, steps=5, factor="shape")
        gif = dae.interpolate_gif(a, b, steps=5, factor="shape")
    assert [f.t for f in frames] == [0.0, 0.25, 0.5, 0.75, 1.0]
    np.testing.assert_allclose(frames[0].reconstruction, dec.reconstruction, atol=1e-6)
    for f in frames:  # only the shape moves: every frame keeps A's texture
        np.testing.assert_array_equal(f.texture, frames[0].texture)
    assert not np.array_equal(frames[0].arrays["grid"], frames[-1].arrays["grid"])
    with Image.open(io.BytesIO(gif)) as anim:
        assert anim.format == "GIF" and getattr(anim, "n_frames", 1) == 5


def test_async_client_gives_the_same_results(client_server: Any, digit_files: list[Path]) -> None:
    with Client(client_server.url) as dae:
        want = [dae.reconstruct(p).reconstruction for p in digit_files[:4]]
        a, b = dae.encode_batch(digit_files[:2])
        want_frames = dae.interpolate(a, b, steps=3)

    async def go() -> tuple[list[Result], list[Result], Encoding, dict[str, Any]]:
        async with AsyncClient(client_server.url) as dae:
            got = await asyncio.gather(*(dae.reconstruct(p) for p in digit_files[:4]))
            frames = await dae.interpolate(a.code, b.code, steps=3)
            return list(got), frames, await dae.encode(digit_files[0]), await dae.metadata()

    got, frames, enc, meta = asyncio.run(go())
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.reconstruction, w, atol=1e-6)
    for frame, want_frame in zip(frames, want_frames, strict=True):
        np.testing.assert_array_equal(frame.reconstruction, want_frame.reconstruction)
    assert enc.code == a.code
    assert meta["variant"] == "class-aware" and meta["class_names"] == [str(i) for i in range(10)]


def test_api_errors_are_typed(client_server: Any, digit_files: list[Path]) -> None:
    with Client(client_server.url) as dae:
        with pytest.raises(APIError) as bad_image:
            dae.encode(b"definitely not an image")
        with pytest.raises(APIError) as bad_code:
            dae.decode("AQAAAAAB")
        with pytest.raises(APIError) as bad_class:
            dae.reconstruct(digit_files[0], class_="eleven")
        with pytest.raises(APIError) as bad_steps:
            dae.interpolate(dae.encode(digit_files[0]), dae.encode(digit_files[1]), steps=1000)
    assert (bad_image.value.status, bad_image.value.code) == (400, "image_undecodable")
    assert bad_image.value.request_id and bad_image.value.request_id in str(bad_image.value)
    assert bad_code.value.status == 400 and bad_code.value.code.startswith("code_")
    assert bad_class.value.code == "class_unknown"
    assert (bad_steps.value.status, bad_steps.value.code) == (422, "steps_out_of_range")


def test_bad_input_is_refused_before_any_request(digit_files: list[Path], tmp_path: Path) -> None:
    # nothing listens on this URL: each of these must fail on the client side, not with a TransportError
    with Client("http://127.0.0.1:9", retry=RetryPolicy(attempts=1)) as dae:
        with pytest.raises(FileNotFoundError, match="no such image file"):
            dae.encode(tmp_path / "missing.png")
        with pytest.raises(TypeError, match="an image must be"):
            dae.encode(3.5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"\(H, W\)"):
            dae.encode(np.zeros((2, 3, 4, 5), np.uint8))
        with pytest.raises(ValueError, match="finite"):
            dae.encode(np.full((28, 28), np.nan, np.float32))
        with pytest.raises(ValueError, match="factor"):
            dae.interpolate("a", "b", factor="colour")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="steps"):
            dae.interpolate("a", "b", steps=1)
        with pytest.raises(TypeError, match="list of images"):
            dae.encode_batch(str(digit_files[0]))
        with pytest.raises(TransportError, match="cannot reach"):
            dae.encode(digit_files[0])


def test_timeout_raises_request_timeout(tiny: Any, serve: Any, digit_files: list[Path]) -> None:
    # a batcher that waits 2 s for company: a 0.3 s client timeout expires first, and is not retried
    slow = serve(tiny("class-aware").bundle, max_wait_ms=2000, max_batch=64)
    with (
        Client(slow.url, timeout=0.3, retry=RetryPolicy(attempts=3)) as dae,
        pytest.raises(RequestTimeoutError, match="within the timeout"),
    ):
        dae.encode(digit_files[0])
    with Client(slow.url, timeout=10) as dae:  # the same call with time to spare works
        assert dae.encode(digit_files[0]).code


def test_client_imports_no_torch() -> None:
    code = "import sys, client, client.__main__; assert 'torch' not in sys.modules, 'torch loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
