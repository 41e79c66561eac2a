"""The trainer: one loop for every variant, on CPU or GPU, single process or DistributedDataParallel.

Commands::

    python -m training fit --data mnist --data-dir ../shared/data/mnist --image-size 32 --epochs 3 --out runs/dae
    python -m training fit --data synthetic --max-steps 200 --out runs/syn
    python -m training fit --variant class-aware --data mnist --data-dir DIR --epochs 3 --out runs/ca
    python -m training fit --variant intrinsic --data synthetic-lit --epochs 3 --out runs/intrinsic
    torchrun --nproc_per_node=2 -m training fit --data synthetic --max-steps 50 --out runs/ddp   # gloo on CPU

Outputs in ``RUN/``: ``last.pt`` (weights, optimiser, model and training config), ``metrics.jsonl`` (losses by
step, test loss by epoch) and ``samples/epoch_NNN.png`` (input | texture | warped grid | reconstruction).
Same seed on the same device gives the same losses (single process, ``num_workers=0``).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from training import data as datasets
from training.checkpoint import read_checkpoint, save_checkpoint
from training.config import ModelConfig
from training.device import pick_device, seed_everything
from training.losses import LossWeights, dae_loss
from training.model import Model, Output, build_model
from training.options import TrainConfig


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


class Schedule:
    """The recipe's step-dependent parts: the appearance gate, the affine-first stage and the learning-rate cooldown.

    Appearance is held at 0 for ``hold`` of the steps (the texture decoder can then only paint one template
    per class, so the warp must explain every within-class difference), ramps linearly to 1 over ``ramp``, and
    afterwards each sample's code is zeroed with probability ``dropout``. With an affine head, the integral
    decoder's learning rate is 0 for the first ``affine_stage`` of the steps. Over the last ``lr_cooldown`` of
    the steps every learning rate follows half a cosine from its value down to 0: a constant rate leaves the
    weights wandering around the optimum (the intrinsic model's errors move by about 5 % between checkpoints
    a few hundred steps apart), a cooldown settles them (the "warmup-stable-decay" shape without the warmup).
    """

    def __init__(self, cfg: TrainConfig, total_steps: int, has_warp: bool) -> None:
        self.total = max(total_steps, 1)
        self.hold = round(cfg.appearance_hold * self.total) if has_warp else 0
        self.ramp = round(cfg.appearance_ramp * self.total) if has_warp else 0
        self.dropout = cfg.appearance_dropout if has_warp else 0.0
        self.affine_steps = round(cfg.affine_stage * self.total) if cfg.warp == "affine+integral" else 0
        self.cooldown = round(cfg.lr_cooldown * self.total)

    def appearance_level(self, step: int) -> float:
        """Gate value in [0, 1] at 0-based ``step`` (before dropout)."""
        if step < self.hold:
            return 0.0
        if step < self.hold + self.ramp:
            return (step - self.hold + 1) / (self.ramp + 1)
        return 1.0

    def appearance_gate(self, step: int, batch: int, device: torch.device) -> torch.Tensor | None:
        """(B, 1) multipliers of the appearance code, or ``None`` once training is unconstrained."""
        level = self.appearance_level(step)
        if level >= 1.0 and self.dropout == 0.0:
            return None
        gate = torch.full((batch, 1), level)
        if self.dropout > 0.0 and step >= self.hold:
            gate = gate * (torch.rand(batch, 1) >= self.dropout).float()
        return gate.to(device)

    def deformation_factor(self, step: int) -> float:
        return 0.0 if step < self.affine_steps else 1.0

    def lr_factor(self, step: int) -> float:
        """Multiplier of every learning rate at 0-based ``step``: 1, then half a cosine to 0 at the last step."""
        start = self.total - self.cooldown
        if self.cooldown == 0 or step < start:
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * (step - start + 1) / self.cooldown))


def build_optimizer(model: Model, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam (the release's betas) with one parameter group per role, for per-decoder learning rates."""
    scale = {"encoder": 1.0, "texture": cfg.texture_lr, "deformation": cfg.deformation_lr}
    groups = [
        {"params": params, "lr": cfg.lr * scale[name], "name": name, "base_lr": cfg.lr * scale[name]}
        for name, params in model.parameter_groups().items()
        if params
    ]
    return torch.optim.Adam(groups, lr=cfg.lr, betas=(0.5, 0.999))


def _apply_stage(optimizer: torch.optim.Optimizer, schedule: Schedule, step: int) -> None:
    cooldown = schedule.lr_factor(step)
    for group in optimizer.param_groups:
        stage = schedule.deformation_factor(step) if group.get("name") == "deformation" else 1.0
        group["lr"] = group["base_lr"] * stage * cooldown


def _init_distributed(device_name: str) -> _Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return _Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local)


def model_config_for(cfg: TrainConfig, train_set: Dataset[Any]) -> ModelConfig:
    if cfg.variant != "class-aware":
        return cfg.model_config()
    return cfg.model_config(datasets.dataset_num_classes(train_set), tuple(datasets.class_names(train_set)))


def forward_batch(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    device: torch.device,
    weights: LossWeights,
    variant: str,
    appearance_gate: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float], Output]:
    x = batch["image"].to(device, non_blocking=True)
    labels = batch["label"].to(device) if variant == "class-aware" else None
    if labels is not None and bool((labels < 0).any()):
        raise ValueError("the class-aware DAE needs labelled data (a folder dataset needs class subfolders)")
    out: Output = model(x, labels=labels, appearance_gate=appearance_gate)
    loss, terms = dae_loss(out, x, weights, labels=labels)
    return loss, terms, out


@torch.no_grad()
def test_loss(
    model: Model, loader: DataLoader[Any], device: torch.device, weights: LossWeights, variant: str
) -> dict[str, float]:
    """Mean of each loss term over the test loader. Class-aware models decode with *predicted* classes here,
    as at inference; the classification term still uses the labels."""
    model.eval()
    sums: dict[str, float] = {}
    n = 0
    for batch in loader:
        x = batch["image"].to(device)
        out = model(x)
        labels = batch["label"].to(device) if variant == "class-aware" else None
        _, terms = dae_loss(out, x, weights, labels=labels)
        terms["mse"] = float(torch.mean((out.reconstruction - x) ** 2))
        if out.latents.class_logits is not None and labels is not None:
            terms["accuracy"] = float((out.latents.class_logits.argmax(1) == labels).float().mean())
        b = x.shape[0]
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v * b
        n += b
    model.train()
    return {k: v / max(n, 1) for k, v in sums.items()}


def _save_samples(model: Model, fixed: torch.Tensor, path: Path) -> None:
    from training.figures import save_sample_sheet  # matplotlib is imported only when pictures are drawn

    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(fixed)
    save_sample_sheet(fixed.cpu(), out, path)
    model.train(was_training)


def fit(cfg: TrainConfig) -> Path:
    """Train, writing RUN/last.pt, RUN/metrics.jsonl and RUN/samples/*.png; returns the run directory."""
    dist_info = _init_distributed(cfg.device)
    device = pick_device(cfg.device)
    if dist_info.world > 1 and device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
    seed_everything(cfg.seed)
    run = Path(cfg.out)
    if dist_info.main:
        (run / "samples").mkdir(parents=True, exist_ok=True)

    def split(name: str, limit: int | None) -> Dataset[dict[str, torch.Tensor]]:
        return datasets.build_dataset(
            cfg.data,
            split=name,
            limit=limit,
            image_size=cfg.image_size,
            channels=cfg.channels,
            data_dir=cfg.data_dir,
            seed=cfg.seed,
        )

    train_set, test_set = split("train", cfg.limit), split("test", cfg.test_limit)
    n_train = datasets.size(train_set)
    if n_train == 0:
        raise ValueError(f"the {cfg.data} training split is empty")

    mcfg = model_config_for(cfg, train_set)
    model = build_model(mcfg).to(device)
    optimizer = build_optimizer(model, cfg)
    step, start_epoch = 0, 0
    if cfg.resume and (run / "last.pt").is_file():
        state = read_checkpoint(run / "last.pt", map_location=device)
        if ModelConfig.from_dict(state["model_config"]) != mcfg:
            raise ValueError(f"--resume: {run / 'last.pt'} was trained with a different model config")
        model.load_state_dict(state["model"])
        if state.get("optimizer"):
            optimizer.load_state_dict(state["optimizer"])
        step, start_epoch = int(state["step"]), int(state["epoch"])
    net: nn.Module = model
    if dist_info.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    sampler: DistributedSampler[Any] | None = None
    if dist_info.world > 1:
        sampler = DistributedSampler(
            train_set, num_replicas=dist_info.world, rank=dist_info.rank, shuffle=True, seed=cfg.seed, drop_last=True
        )
    steps_per_epoch = n_train // (cfg.batch_size * dist_info.world)
    if steps_per_epoch == 0:
        raise ValueError(
            f"batch size {cfg.batch_size} × {dist_info.world} process(es) exceeds the {n_train} training images"
        )
    epochs = cfg.epochs if cfg.max_steps is None else math.ceil(cfg.max_steps / steps_per_epoch)
    total_steps = cfg.max_steps if cfg.max_steps is not None else epochs * steps_per_epoch
    test_loader = DataLoader(test_set, batch_size=256, shuffle=False)
    fixed = torch.stack([test_set[i]["image"] for i in range(min(8, datasets.size(test_set)))]).to(device)
    weights = cfg.loss_weights()
    schedule = Schedule(cfg, total_steps, mcfg.has_warp)
    train_record = asdict(cfg)
    metrics_path = run / "metrics.jsonl"
    log = metrics_path.open("a" if cfg.resume else "w") if dist_info.main else None
    bar = tqdm(
        total=total_steps,
        initial=step,
        disable=not (cfg.progress and dist_info.main),
        unit="step",
        dynamic_ncols=True,
        mininterval=1.0,
    )
    model.train()
    try:
        for epoch in range(start_epoch, epochs):
            if step >= total_steps:
                break
            generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)  # same order on every resume
            if sampler is not None:
                sampler.set_epoch(epoch)
            loader = DataLoader(
                train_set,
                batch_size=cfg.batch_size,
                sampler=sampler,
                shuffle=sampler is None,
                generator=generator if sampler is None else None,
                drop_last=True,
            )
            t0, seen = time.perf_counter(), 0
            for batch in loader:
                if step >= total_steps:
                    break
                _apply_stage(optimizer, schedule, step)
                gate = schedule.appearance_gate(step, batch["image"].shape[0], device)
                loss, terms, _ = forward_batch(net, batch, device, weights, cfg.variant, gate)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                seen += batch["image"].shape[0] * dist_info.world
                ips = seen / max(time.perf_counter() - t0, 1e-9)
                bar.update(1)
                level = schedule.appearance_level(step - 1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{terms['total']:.4f}", app=f"{level:.2f}", img_s=f"{ips:.0f}")
                if log is not None and (step % cfg.log_every == 0 or step == 1 or step == total_steps):
                    record = {"step": step, "epoch": epoch + 1, "img_per_s": round(ips, 1), "appearance": level}
                    log.write(json.dumps({**record, **{k: round(v, 6) for k, v in terms.items()}}) + "\n")
                    log.flush()
            if dist_info.main and log is not None:
                test = test_loss(model, test_loader, device, weights, cfg.variant)
                log.write(json.dumps({"epoch": epoch + 1, "step": step, "test": test}) + "\n")
                log.flush()
                bar.write(f"epoch {epoch + 1}: test " + " ".join(f"{k}={v:.4f}" for k, v in test.items()))
                _save_samples(model, fixed, run / "samples" / f"epoch_{epoch + 1:03d}.png")
                save_checkpoint(
                    run / "last.pt",
                    model,
                    mcfg,
                    train_config=train_record,
                    optimizer=optimizer,
                    step=step,
                    epoch=epoch + 1,
                    metrics={f"test_{k}": v for k, v in test.items()},
                )
            if dist_info.world > 1:
                dist.barrier()
    finally:
        bar.close()
        if log is not None:
            log.close()
        if dist_info.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return run


__all__ = ["Schedule", "TrainConfig", "build_optimizer", "fit"]
