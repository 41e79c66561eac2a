"""The service's own .npz writer against numpy's: the same members byte for byte, a valid ZIP, exact arrays."""

from __future__ import annotations

import io
import zipfile

import numpy as np

from service.render import npz_bytes


def test_npz_members_are_numpys_own_and_load_back_exactly() -> None:
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {
        "texture": rng.random((3, 1, 32, 32), dtype=np.float32),
        "grid": rng.random((1, 2, 64, 64), dtype=np.float32),
        "shape": rng.random((1, 142), dtype=np.float32),
        "appearance": rng.random((2, 2)),  # float64 in: float32 out, as the service promises
        "strided": rng.random((4, 10), dtype=np.float32)[:, ::3],  # not contiguous
        "vector": rng.random(10, dtype=np.float32),
        "scalar": np.array(3.5, np.float32),  # 0-d stays 0-d
        "empty": np.zeros((0, 3), np.float32),
    }
    data = npz_bytes(arrays)
    ours = zipfile.ZipFile(io.BytesIO(data))
    assert ours.testzip() is None
    reference = io.BytesIO()
    np.savez(reference, **{k: np.asarray(v, np.float32) for k, v in arrays.items()})  # type: ignore[arg-type]
    theirs = zipfile.ZipFile(reference)
    assert ours.namelist() == theirs.namelist()
    for name in theirs.namelist():
        assert ours.read(name) == theirs.read(name), name  # header and payload, byte for byte
    loaded = np.load(io.BytesIO(data), allow_pickle=False)
    for key, value in arrays.items():
        want = np.asarray(value, np.float32)
        assert loaded[key].dtype == np.float32 and loaded[key].shape == want.shape
        np.testing.assert_array_equal(loaded[key], want)


def test_a_long_shape_still_aligns_the_data_to_64_bytes() -> None:
    arr = np.zeros((1,) * 30, np.float32)
    member = zipfile.ZipFile(io.BytesIO(npz_bytes({"deep": arr}))).read("deep.npy")
    header_len = int.from_bytes(member[8:10], "little")
    assert (10 + header_len) % 64 == 0 and member[10 + header_len - 1 : 10 + header_len] == b"\n"
    assert np.load(io.BytesIO(member)).shape == arr.shape
