"""Training loop: fixed seeds, a checkpoint every epoch, --resume, metrics as JSON lines."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch
from tqdm import tqdm

from training.config import TrainConfig
from training.data import Dataset, load_dataset
from training.model import VAE

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.json"


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_threads(threads: int | None = None) -> None:
    """All cores by default; fewer when several runs share the machine."""
    torch.set_num_threads(threads or os.cpu_count() or 1)


def to_tensor(images, limit: int | None = None) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [0, 1]."""
    images = images[:limit] if limit else images
    return torch.from_numpy(images).float().div_(255.0).unsqueeze(1)


def binarize_fixed(x: torch.Tensor, seed: int = 1234) -> torch.Tensor:
    """One fixed dynamic binarization of an evaluation set, the same on every run."""
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(seed))


def eval_targets(model: VAE, x: torch.Tensor) -> torch.Tensor:
    return binarize_fixed(x) if model.likelihood == "bernoulli" else x


def load_model(run_dir: Path, map_location: str | torch.device = "cpu") -> tuple[VAE, TrainConfig]:
    """Rebuild the model from a run folder; weights only, never pickled objects."""
    config = TrainConfig.from_dict(json.loads((run_dir / CONFIG).read_text()))
    state = torch.load(run_dir / CHECKPOINT, map_location=map_location, weights_only=True)
    model = VAE(config.architecture(), config.likelihood)
    model.load_state_dict(state["model"])
    model.eval()
    return model, config


@torch.no_grad()
def test_elbo(model: VAE, x: torch.Tensor, batch_size: int = 1000) -> dict[str, float]:
    model.eval()
    totals = {"neg_elbo": 0.0, "recon": 0.0, "kl": 0.0}
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        terms = model.loss(batch, model(batch))
        for key, value in (("neg_elbo", terms.neg_elbo), ("recon", terms.recon), ("kl", terms.kl)):
            totals[key] += value.item() * len(batch)
    return {key: value / len(x) for key, value in totals.items()}


def _lr_at(config: TrainConfig, progress: float) -> float:
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return config.lr_final + (config.lr - config.lr_final) * cosine


def train(
    config: TrainConfig,
    out_dir: Path,
    resume: bool = False,
    dataset: Dataset | None = None,
    threads: int | None = None,
) -> Path:
    """Train (or resume) a run in out_dir; returns out_dir."""
    set_threads(threads)
    device = pick_device()
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = dataset or load_dataset(config.dataset)
    config.image_shape = dataset.image_shape
    torch.manual_seed(config.seed)

    train_x = to_tensor(dataset.train.images, config.limit_train)
    test_x = to_tensor(dataset.test.images, config.limit_test)
    model = VAE(config.architecture(), config.likelihood).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    test_targets = eval_targets(model, test_x).to(device)
    start_epoch = 0
    generator = torch.Generator().manual_seed(config.seed)

    checkpoint_path = out_dir / CHECKPOINT
    if resume and checkpoint_path.exists():
        saved = TrainConfig.from_dict(json.loads((out_dir / CONFIG).read_text()))
        saved.epochs = config.epochs  # resuming may extend the schedule, nothing else
        if saved != config:
            raise SystemExit(f"--resume: {out_dir / CONFIG} differs from the requested configuration")
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch = int(state["epoch"])
    elif checkpoint_path.exists():
        raise SystemExit(f"{checkpoint_path} exists; pass --resume or choose another output folder")
    (out_dir / CONFIG).write_text(json.dumps(config.to_dict(), indent=2))

    steps_per_epoch = math.ceil(len(train_x) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    epochs = tqdm(range(start_epoch, config.epochs), initial=start_epoch, total=config.epochs, unit="epoch")
    for epoch in epochs:
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(train_x), generator=generator)
        sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
        for step in range(steps_per_epoch):
            progress = (epoch * steps_per_epoch + step) / max(total_steps, 1)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(config, progress)
            warm = config.kl_warmup_epochs
            beta = config.beta * (min(1.0, (epoch + step / steps_per_epoch) / warm) if warm else 1.0)
            batch = train_x[order[step * config.batch_size : (step + 1) * config.batch_size]]
            if config.likelihood == "bernoulli":
                batch = torch.bernoulli(batch, generator=generator)  # dynamic binarization
            batch = batch.to(device)
            terms = model.loss(batch, model(batch), beta=beta)
            optimizer.zero_grad(set_to_none=True)
            terms.loss.backward()
            optimizer.step()
            for key in sums:
                sums[key] += getattr(terms, key).item() * len(batch)
        train_seconds = time.perf_counter() - started
        record = {key: value / len(train_x) for key, value in sums.items()}
        record = {
            "epoch": epoch + 1,
            **{f"train_{k}": round(v, 4) for k, v in record.items()},
            **{f"test_{k}": round(v, 4) for k, v in test_elbo(model, test_targets).items()},
            "lr": optimizer.param_groups[0]["lr"],
            "beta": beta,
            "epoch_seconds": round(train_seconds, 2),
        }
        epochs.set_postfix(
            loss=record["train_loss"], recon=record["train_recon"], kl=record["train_kl"],
            test_elbo=record["test_neg_elbo"],
        )
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch + 1,
        }
        tmp = checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(checkpoint_path)  # atomic: a cut-off never leaves a half-written checkpoint
        with open(out_dir / METRICS, "a") as fh:
            fh.write(json.dumps(record) + "\n")
    return out_dir
