"""Latent codes: exact float32 round trip, URL safety, and a stable 4xx code for every kind of bad code."""

from __future__ import annotations

import base64
from collections.abc import Callable

import numpy as np
import pytest

from service.codes import CodeLayout, decode_code, encode_code
from service.errors import BadRequestError, ServiceError, UnprocessableError

SHA = "ab" * 32
LAYOUT = CodeLayout.for_model(SHA, [("shape", 8), ("appearance", 4), ("class_code", 10)])


def values(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.random(s, dtype=np.float32) for n, s in LAYOUT.parts}


def test_float32_round_trip_is_exact_and_url_safe() -> None:
    v = values()
    code = encode_code(LAYOUT, v)
    assert set(code) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    back = decode_code(LAYOUT, code)
    for name, arr in v.items():
        assert back[name].dtype == np.float32
        assert np.array_equal(back[name], arr), name


def test_float16_codes_are_shorter_and_close() -> None:
    v = values(1)
    c32, c16 = encode_code(LAYOUT, v), encode_code(LAYOUT, v, "float16")
    assert len(c16) < len(c32)
    back = decode_code(LAYOUT, c16)
    assert np.allclose(back["shape"], v["shape"], atol=1e-3)


def test_zero_sized_parts_are_left_out() -> None:
    layout = CodeLayout.for_model(SHA, [("shape", 0), ("appearance", 5)])
    assert layout.parts == (("appearance", 5),)
    assert list(decode_code(layout, encode_code(layout, {"appearance": np.ones(5)}))) == ["appearance"]


def raw(code: str) -> bytes:
    return base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))


def enc(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("mutate", "status", "code"),
    [
        (lambda c: "", 400, "code_malformed"),
        (lambda c: "!!!not base64!!!", 400, "code_malformed"),
        (lambda c: "AAAA", 400, "code_malformed"),  # too short
        (lambda c: c[:-12], 400, "code_checksum"),  # truncated: the CRC no longer matches
        (lambda c: enc(raw(c)[:10] + bytes([raw(c)[10] ^ 1]) + raw(c)[11:]), 400, "code_checksum"),
        (lambda c: enc(bytes([9]) + raw(c)[1:]), 400, "code_version"),
    ],
)
def test_bad_codes_give_stable_4xx(mutate: Callable[[str], str], status: int, code: str) -> None:
    good = encode_code(LAYOUT, values())
    with pytest.raises(ServiceError) as info:
        decode_code(LAYOUT, mutate(good))
    assert (info.value.status, info.value.code) == (status, code)
    assert isinstance(info.value, BadRequestError)


def test_code_from_another_model_is_refused() -> None:
    other = CodeLayout.for_model("cd" * 32, [n_s for n_s in LAYOUT.parts])
    with pytest.raises(UnprocessableError) as info:
        decode_code(LAYOUT, encode_code(other, values()))
    assert info.value.code == "code_foreign_model"


def test_wrong_length_for_this_model_is_refused() -> None:
    shorter = CodeLayout(LAYOUT.model_id, (("shape", 8), ("appearance", 4)))
    with pytest.raises(BadRequestError) as info:
        decode_code(LAYOUT, encode_code(shorter, values()))
    assert info.value.code == "code_malformed"
    assert "need 22" in info.value.message


def test_non_finite_values_in_a_code_are_refused() -> None:
    v = values()
    v["shape"][3] = np.nan
    with pytest.raises(UnprocessableError) as info:
        decode_code(LAYOUT, encode_code(LAYOUT, v))
    assert info.value.code == "latent_not_finite"
