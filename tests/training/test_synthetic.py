"""The synthetic datasets' ground truth: image = warp(texture, grid), fold-free grids, Lambertian shading.

.venv/bin/python -m pytest tests/training/test_synthetic.py -x -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from training.data import DataError, build_dataset, class_names, dataset_num_classes
from training.synthetic import (
    AMBIENT,
    MAX_STRENGTH,
    OBJECT_PATTERNS,
    OBJECT_SILHOUETTES,
    TEXTURE_NAMES,
    SyntheticLitDataset,
    SyntheticWarpDataset,
    base_texture,
    random_fold_free_grid,
)
from training.warp import identity_grid, warp


def _jacobian_det(grid: np.ndarray) -> np.ndarray:
    """Finite-difference det of d(x, y)/d(col, row) on the interior of a (2, N, N) grid."""
    x, y = grid.astype(np.float64)
    x_c, x_r = np.gradient(x, axis=1), np.gradient(x, axis=0)
    y_c, y_r = np.gradient(y, axis=1), np.gradient(y, axis=0)
    det: np.ndarray = x_c * y_r - x_r * y_c
    return det


@pytest.mark.parametrize("size", [32, 64])
def test_random_grids_are_fold_free_and_inside(size: int) -> None:
    step = 2.0 / (size - 1)
    for seed in range(100):
        grid = random_fold_free_grid(np.random.default_rng(seed), size, MAX_STRENGTH)
        assert grid.shape == (2, size, size) and grid.dtype == np.float32
        dx_along_width = np.diff(grid[0], axis=1)
        dy_along_height = np.diff(grid[1], axis=0)
        # strictly increasing, with the slope bound the construction promises: >= (1 - 2s) of a pixel
        assert dx_along_width.min() > 0 and dy_along_height.min() > 0
        assert _jacobian_det(grid).min() > (1 - 2 * MAX_STRENGTH) * step * step * 0.5
        assert grid.min() >= -1 - 1e-6 and grid.max() <= 1 + 1e-6  # never samples the zero padding


def test_grids_are_real_deformations_and_strength_zero_is_identity() -> None:
    ident = identity_grid(32)[0].numpy()
    moves = [np.abs(random_fold_free_grid(np.random.default_rng(s), 32) - ident).max() for s in range(20)]
    assert min(moves) > 0.01 and max(moves) > 0.05  # at least about a third of a pixel, often more
    still = random_fold_free_grid(np.random.default_rng(0), 32, 0.0)
    assert np.allclose(still, ident, atol=1e-6)
    with pytest.raises(DataError, match="strength"):
        random_fold_free_grid(np.random.default_rng(0), 32, 0.6)


@pytest.mark.parametrize(
    ("cls", "channels", "size"),
    [
        (SyntheticWarpDataset, 1, 32),
        (SyntheticWarpDataset, 3, 64),
        (SyntheticLitDataset, 1, 32),
        (SyntheticLitDataset, 3, 64),
    ],
)
def test_image_is_the_warped_texture(cls: type[SyntheticWarpDataset], channels: int, size: int) -> None:
    ds = cls("train", image_size=size, channels=channels, limit=24)
    for i in range(len(ds)):
        item = ds[i]
        assert item["image"].shape == item["texture"].shape == (channels, size, size)
        assert item["grid"].shape == (2, size, size)
        assert all(v.dtype == torch.float32 for k, v in item.items() if k != "label")
        assert item["label"].dtype == torch.int64 and int(item["label"]) == i % len(ds.classes)
        again = warp(item["texture"][None], item["grid"][None])[0]
        assert torch.allclose(item["image"], again, atol=1e-5)
        assert float(item["image"].min()) >= 0.0 and float(item["image"].max()) <= 1.0
        assert float((item["image"] - item["texture"]).abs().max()) > 1e-3  # the warp did something


def test_deterministic_per_seed_split_and_index() -> None:
    a = SyntheticWarpDataset("train", seed=3)
    b = SyntheticWarpDataset("train", seed=3)
    backwards = [b[i] for i in (9, 5, 0)]  # access order must not matter: item i depends on (seed, split, i)
    for item, i in zip(backwards, (9, 5, 0), strict=True):
        assert all(torch.equal(item[k], a[i][k]) for k in item)
    other_seed, other_split = SyntheticWarpDataset("train", seed=4), SyntheticWarpDataset("test", seed=3)
    assert not torch.equal(a[0]["grid"], other_seed[0]["grid"])
    assert not torch.equal(a[0]["grid"], other_split[0]["grid"])
    assert not torch.equal(a[0]["grid"], a[10]["grid"])  # same texture, different deformation
    assert torch.equal(a[0]["texture"], a[10]["texture"])
    lit_a, lit_b = SyntheticLitDataset(seed=1), SyntheticLitDataset(seed=2)
    assert torch.equal(lit_a[4]["image"], SyntheticLitDataset(seed=1)[4]["image"])
    assert not torch.equal(lit_a[4]["light"], lit_b[4]["light"])


def test_lit_ground_truth_is_lambertian() -> None:
    ds = SyntheticLitDataset("test", image_size=32, channels=3, limit=30)
    for i in range(len(ds)):
        item = ds[i]
        light, shading, albedo = item["light"], item["shading"], item["albedo"]
        assert shading.shape == (1, 32, 32) and albedo.shape == (3, 32, 32) and light.shape == (3,)
        assert torch.allclose(item["texture"], albedo * shading, atol=1e-6)
        assert abs(float(light.norm()) - 1.0) < 1e-5 and float(light[2]) > 0  # upper hemisphere
        assert float(shading.min()) >= AMBIENT - 1e-6 and float(shading.max()) <= 1.0
        assert float(albedo.min()) >= 0.3 - 1e-6 and float(albedo.max()) <= 1.0 + 1e-6
        # Corners are flat ground (normal = +z), so there the shading is ambient + (1 - ambient) * l_z.
        flat = AMBIENT + (1 - AMBIENT) * float(light[2])
        assert abs(float(shading[0, 0, 0]) - flat) < 1e-4
        # Shading varies across the shape: a surface lit from one side is brighter on that side.
        assert float(shading.max() - shading.min()) > 0.1


def test_lit_albedo_is_a_two_colour_gradient_an_albedo_code_can_hold() -> None:
    # Every pixel's colour lies on the segment between two colours (one free number per pixel, one plane wave
    # across the image), and the colours differ between images: nine numbers per albedo in all.
    ds = SyntheticLitDataset("test", image_size=32, channels=3, limit=12)
    means = []
    for i in range(len(ds)):
        albedo = ds[i]["albedo"].reshape(3, -1).double()
        centred = albedo - albedo.mean(1, keepdim=True)
        singular = torch.linalg.svdvals(centred)
        assert float(singular[1]) < 1e-6 * max(float(singular[0]), 1.0)  # rank 1: a line in RGB
        means.append(albedo.mean(1))
    assert float(torch.stack(means).std(0).min()) > 0.05


@pytest.mark.parametrize("channels", [1, 3])
def test_lit_objects_are_patterned_silhouettes_on_black(channels: int) -> None:
    ds = build_dataset("synthetic-lit-objects", split="test", image_size=32, channels=channels, limit=24)
    assert isinstance(ds, SyntheticLitDataset) and ds.scene == "objects" and dataset_num_classes(ds) == 6
    colours = []
    for i in range(len(ds)):
        item = ds[i]
        label = int(item["label"])
        assert label == i % 6
        albedo, shading = item["albedo"].double(), item["shading"].double()
        assert torch.allclose(item["texture"].double(), albedo * shading, atol=1e-6)
        assert torch.allclose(warp(item["texture"][None], item["grid"][None])[0], item["image"], atol=1e-5)
        silhouette = torch.from_numpy(base_texture(OBJECT_SILHOUETTES[label], 32))
        assert float(albedo[:, silhouette < 1e-3].abs().max()) < 1e-3  # black around the object
        inside = albedo[:, silhouette > 0.99]
        assert float(inside.min()) >= 0.29 and float(inside.max()) <= 1.0 + 1e-6
        # Two colours inside (the edges are soft, so "on" and "off" the class's pattern within 1 %).
        pattern = torch.from_numpy(base_texture(OBJECT_PATTERNS[label], 32))
        on = albedo[:, (silhouette > 0.99) & (pattern > 0.99)]
        off = albedo[:, (silhouette > 0.99) & (pattern < 0.01)]
        assert on.shape[1] > 0 and off.shape[1] > 0
        assert float((on - on[:, :1]).abs().max()) < 0.02 and float((off - off[:, :1]).abs().max()) < 0.02
        colours.append(on[:, 0])
    assert float(torch.stack(colours).std(0).min()) > 0.05  # the colours differ between images
    # The warp moves sharp edges: an image differs from its unwarped texture far more than on the frame scene.
    frame = build_dataset("synthetic-lit", split="test", image_size=32, channels=channels, limit=24)

    def moved(d: SyntheticLitDataset) -> float:
        return sum(float(((d[i]["image"] - d[i]["texture"]) ** 2).mean()) for i in range(24)) / 24

    assert isinstance(frame, SyntheticLitDataset) and moved(ds) > 2 * moved(frame)
    with pytest.raises(DataError, match="scene"):
        SyntheticLitDataset(scene="room")


def test_textures_distinct_classes_and_lengths() -> None:
    ds = build_dataset("synthetic", split="test", image_size=32)
    assert len(ds) == 2000 and len(build_dataset("synthetic")) == 10000  # type: ignore[arg-type]
    assert dataset_num_classes(ds) == 10 and class_names(ds) == list(TEXTURE_NAMES)
    lit = build_dataset("synthetic-lit", limit=7)
    assert len(lit) == 7 and dataset_num_classes(lit) == 6  # type: ignore[arg-type]
    tex = SyntheticWarpDataset(image_size=32).textures.reshape(10, -1)
    dist = ((tex[:, None] - tex[None]) ** 2).mean(-1)
    assert dist[~np.eye(10, dtype=bool)].min() > 0.02  # every base texture differs clearly from the others
    assert tex.max(1).min() > 0.9 and tex.min(1).max() < 0.01  # bright shapes on black
    with pytest.raises(IndexError):
        SyntheticWarpDataset(limit=5)[5]
    for kwargs in ({"split": "val"}, {"channels": 2}, {"seed": -1}, {"strength": 0.5}, {"length": 0}):
        with pytest.raises(DataError):
            SyntheticWarpDataset(**kwargs)


def test_collates_in_a_dataloader() -> None:
    ds = build_dataset("synthetic-lit", image_size=32, channels=3, limit=16, seed=5)
    batch = next(iter(DataLoader(ds, batch_size=8, shuffle=False)))
    assert batch["image"].shape == (8, 3, 32, 32) and batch["grid"].shape == (8, 2, 32, 32)
    assert batch["light"].shape == (8, 3) and batch["label"].tolist() == [0, 1, 2, 3, 4, 5, 0, 1]
    assert torch.allclose(warp(batch["texture"], batch["grid"]), batch["image"], atol=1e-5)
