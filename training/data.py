"""Datasets for training and evaluation, and the one image preprocessing the service repeats.

Contract: every dataset is a ``torch.utils.data.Dataset`` whose items are dicts of tensors::

    {"image": float32 (C, N, N) in [0, 1], "label": int64 scalar (-1 when unknown)}
    synthetic adds      "grid" float32 (2, N, N), "texture" (C, N, N)  with warp(texture, grid) == image
    synthetic-lit adds  "albedo" (C, N, N), "shading" (1, N, N), "light" (3,)  with texture = albedo*shading
                        (synthetic-lit-objects: the same, a patterned object on black; training/synthetic.py)

Build one by name::

    ds = build_dataset("mnist", split="train", image_size=32, data_dir="data/mnist")
    ds = build_dataset("folder", data_dir="my_images", channels=3, image_size=64)   # subfolders = classes
    ds = build_dataset("synthetic", split="test", limit=500, seed=1)

Preprocessing (:func:`preprocess_pil`, documented for the bundle in ``bundle.manifest.Preprocessing``) is, in
this order: bring the mode to L/RGB (16-bit grey / 257, palette and CMYK expanded), composite any alpha onto
black, ``convert`` to ``"L"`` or ``"RGB"``, ``resize((N, N), BILINEAR)``, then uint8 ``/ 255`` to float32 —
the steps of service/imaging.py. MNIST is preprocessed once at construction and held as uint8.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sized
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Subset

from bundle.preprocess import UnsupportedModeError, to_model_image, to_uint8_chw
from training.mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, DataError, load_mnist
from training.synthetic import SyntheticLitDataset, SyntheticWarpDataset

__all__ = [
    "DATASETS",
    "DataError",
    "ImageFolderDataset",
    "MNISTDataset",
    "SyntheticLitDataset",
    "SyntheticWarpDataset",
    "build_dataset",
    "class_names",
    "dataset_num_classes",
    "preprocess_pil",
    "size",
]

DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "folder", "synthetic", "synthetic-lit", "synthetic-lit-objects")
SPLITS: tuple[str, ...] = ("train", "test")
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
DEFAULT_MNIST_DIR = "data/mnist"  # where `python -m training fetch-mnist --dest data/mnist` puts the files
TEST_FRACTION_PERCENT = 10  # folder datasets: about this share of files (by a hash of their path) is "test"


def preprocess_pil(img: Image.Image, image_size: int, channels: int) -> np.ndarray:
    """A decoded Pillow image -> uint8 ``(C, N, N)``: normalise mode (alpha onto black), convert, resize.

    It is the service's own conversion (``bundle.preprocess``, what ``manifest.preprocessing`` describes),
    so training sees what inference will see; a test checks both give the same array for the same file.
    """
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    if image_size < 1:
        raise DataError(f"image_size must be positive, got {image_size}")
    try:
        img = to_model_image(img, image_size, "L" if channels == 1 else "RGB")
    except UnsupportedModeError as e:
        raise DataError(str(e)) from e
    return to_uint8_chw(img)  # a writable copy, so torch.from_numpy accepts it


def _item(image_u8: np.ndarray, label: int) -> dict[str, torch.Tensor]:
    return {
        "image": torch.from_numpy(image_u8).to(torch.float32).div_(255.0),
        "label": torch.tensor(label, dtype=torch.int64),
    }


class MNISTDataset(Dataset[dict[str, torch.Tensor]]):
    """MNIST (or Fashion-MNIST) preprocessed once: ``images`` uint8 ``(n, C, N, N)``, ``labels`` int64 ``(n,)``."""

    def __init__(
        self,
        data_dir: str | Path,
        split: str = "train",
        *,
        image_size: int = 32,
        channels: int = 1,
        limit: int | None = None,
        fashion: bool = False,
    ) -> None:
        if split not in ("train", "test"):
            raise DataError(f"split must be 'train' or 'test', got {split!r}")
        raw, labels = load_mnist(data_dir, "train" if split == "train" else "test", fashion=fashion)
        if limit is not None:
            raw, labels = raw[:limit], labels[:limit]
        # Resize in "L" and repeat for RGB: convert("RGB") of a grey image copies it to 3 channels and
        # the bilinear resize is per channel: this equals preprocess_pil(.., channels=3), a third of the work.
        gray = np.stack([preprocess_pil(Image.fromarray(im, mode="L"), image_size, 1) for im in raw])
        self.images = np.repeat(gray, 3, axis=1) if channels == 3 else gray
        self.labels = labels.astype(np.int64)
        self.split = split
        self.classes = list(FASHION_MNIST_CLASSES) if fashion else [str(d) for d in range(10)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return _item(self.images[index], int(self.labels[index]))


def _is_test(relative: str) -> bool:
    # A stable hash of the path (not Python's salted hash()): the same file lands in the same split on
    # every machine and run, and adding files never moves existing ones between splits.
    digest = hashlib.sha1(relative.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:4], "big") % 100 < TEST_FRACTION_PERCENT


def _image_files(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in filenames if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith(".")]
    return sorted(found)


def _open(path: Path) -> Image.Image:
    """Decode fully (``load``) so a file that is cut short fails here, named, not deep inside a DataLoader."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
            try:
                img.load()
            except BaseException:
                img.close()  # a failed load leaves the file open; close it rather than leak it
                raise
        return img
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"cannot decode image {path}: {e}") from e


class ImageFolderDataset(Dataset[dict[str, torch.Tensor]]):
    """Users' images: ``*.png``/``*.jpg``/``*.jpeg`` found recursively (any size, decoded on access).

    If ``root`` has subfolders holding images, each is a class (ImageFolder style, sorted names) and
    images directly in ``root`` are an error; otherwise every image has label -1. ``split`` is ``"train"``
    (~90 %), ``"test"`` (~10 %, by a stable hash of the relative path) or ``"all"``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        image_size: int = 32,
        channels: int = 1,
        limit: int | None = None,
    ) -> None:
        if split not in (*SPLITS, "all"):
            raise DataError(f"folder split must be 'train', 'test' or 'all', got {split!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"image folder {self.root} does not exist or is not a directory")
        files = _image_files(self.root)
        if not files:
            raise DataError(f"image folder {self.root} has no {'/'.join(IMAGE_SUFFIXES)} files (searched recursively)")
        rel = [f.relative_to(self.root) for f in files]
        class_dirs = sorted({r.parts[0] for r in rel if len(r.parts) > 1})
        top_level = [r for r in rel if len(r.parts) == 1]
        if class_dirs and top_level:
            raise DataError(
                f"image folder {self.root} has class subfolders {class_dirs} but also images directly inside "
                f"it ({top_level[0]}, ...): move them into a class folder, or remove the subfolders"
            )
        self.classes: list[str] = class_dirs
        index = {c: i for i, c in enumerate(class_dirs)}
        items = [(f, index[r.parts[0]] if class_dirs else -1, r.as_posix()) for f, r in zip(files, rel, strict=True)]
        if split != "all":
            items = [it for it in items if _is_test(it[2]) == (split == "test")]
        if not items:
            raise DataError(
                f"image folder {self.root}: the {split!r} split is empty ({len(files)} images in total; "
                f"about {TEST_FRACTION_PERCENT}% go to 'test' by a hash of the path)"
            )
        if limit is not None:
            items = items[:limit]
        for path, _, _ in items:
            _open(path).close()  # fail now, naming the file, rather than mid-epoch
        self.files = [p for p, _, _ in items]
        self.labels = [lab for _, lab, _ in items]
        self.image_size, self.channels, self.split = image_size, channels, split

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        img = _open(self.files[index])
        try:
            arr = preprocess_pil(img, self.image_size, self.channels)
        finally:
            img.close()
        return _item(arr, self.labels[index])


def build_dataset(
    name: str,
    *,
    split: str = "train",
    image_size: int = 32,
    channels: int = 1,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> Dataset[dict[str, torch.Tensor]]:
    """The dataset ``name`` (one of :data:`DATASETS`); ``limit`` keeps the first ``limit`` items."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS and not (name == "folder" and split == "all"):
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    if image_size < 4:
        raise DataError(f"image_size must be at least 4, got {image_size}")
    if limit is not None and limit < 1:
        raise DataError(f"limit must be positive (or None for all items), got {limit}")
    common: dict[str, Any] = {"image_size": image_size, "channels": channels, "limit": limit}
    if name == "mnist":
        root = data_dir if data_dir is not None else os.environ.get("MNIST_DIR", DEFAULT_MNIST_DIR)
        return MNISTDataset(root, split, **common)
    if name == "fashion-mnist":
        fashion_root = data_dir if data_dir is not None else os.environ.get("FASHION_MNIST_DIR", FASHION_MNIST_DIR)
        return MNISTDataset(fashion_root, split, fashion=True, **common)
    if name == "folder":
        if data_dir is None:
            raise DataError("the folder dataset needs data_dir (--data-dir): a folder of PNG/JPEG images")
        return ImageFolderDataset(data_dir, split, **common)
    if name == "synthetic":
        return SyntheticWarpDataset(split, seed=seed, **common)
    return SyntheticLitDataset(
        split, seed=seed, scene="objects" if name == "synthetic-lit-objects" else "frame", **common
    )


def size(ds: Dataset[Any]) -> int:
    """``len(ds)``: every dataset here has a length; ``torch``'s ``Dataset`` type just does not say so."""
    return len(cast(Sized, ds))


def _unwrap(ds: Dataset[Any]) -> Dataset[Any]:
    while isinstance(ds, Subset):
        ds = ds.dataset
    return ds


def class_names(ds: Dataset[Any]) -> list[str]:
    """Names of the classes, in label order ([] for unlabelled data); looks through ``Subset`` wrappers."""
    return list(getattr(_unwrap(ds), "classes", []))


def dataset_num_classes(ds: Dataset[Any]) -> int:
    """10 for MNIST, the number of class subfolders for a folder (0 if none), base textures for synthetic."""
    return len(class_names(ds))
