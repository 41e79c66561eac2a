"""The images parity is checked on: uniform noise, and real test images of the data the model was trained on.

Real images come from ``training.data.build_dataset(..., split="test")``, i.e. through the trainer's own
preprocessing. Which dataset: the checkpoint's ``train_config["data"]`` (``"mnist"`` when absent), read from
``data_dir`` if given, else from ``train_config["data_dir"]`` (for MNIST ``build_dataset`` then falls back to
``$MNIST_DIR`` and ``data/mnist``). Synthetic sets need no files and are rebuilt from the recorded seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from export.errors import ExportError

PARITY_IMAGES = 64  # the largest parity batch; smaller batches are prefixes of these


def random_images(n: int, channels: int, size: int, *, seed: int = 0) -> Tensor:
    """``(n, C, N, N)`` uniform in [0, 1): the encoder's whole input range, far from the training data."""
    return torch.rand((n, channels, size, size), generator=torch.Generator().manual_seed(seed))


def real_images(
    train_config: dict[str, Any],
    *,
    image_size: int,
    channels: int,
    data_dir: Path | None = None,
    n: int = PARITY_IMAGES,
) -> tuple[Tensor, str]:
    """``(n, C, N, N)`` test images of the training data and a description of where they came from.

    Raises ExportError (saying to pass ``--data-dir``) when the files are not there. A test split with fewer
    than ``n`` images is repeated to ``n``: the parity batches must be full.
    """
    from training.data import build_dataset  # imported here: only parity needs the data pipeline

    name = str(train_config.get("data") or "mnist")
    directory = data_dir if data_dir is not None else train_config.get("data_dir")
    seed = int(train_config.get("seed") or 0)
    try:
        ds = build_dataset(
            name,
            split="test",
            image_size=image_size,
            channels=channels,
            data_dir=directory,
            limit=n,
            seed=seed,
        )
        count = len(ds)  # type: ignore[arg-type]
        if count == 0:
            raise ValueError("the test split is empty")
        images = torch.stack([ds[i % count]["image"] for i in range(n)])
    except (ValueError, OSError) as e:  # DataError is a ValueError
        raise ExportError(
            f"real-input parity needs the {name!r} test images (data dir {directory!r}): {e}. "
            "Pass --data-dir DIR (MNIST: the folder with t10k-images-idx3-ubyte[.gz])"
        ) from e
    if tuple(images.shape) != (n, channels, image_size, image_size):
        raise ExportError(
            f"{name} test images have shape {tuple(images.shape)[1:]}, "
            f"the model takes {(channels, image_size, image_size)}"
        )
    where = f"{name} test split" + (f" from {directory}" if directory else "")
    return images, where
