"""Training: `train_epoch` runs one epoch and returns its metrics record; `train` drives the run.

Fixed seeds, a checkpoint and a metrics line after every epoch, --resume, and the same code
under torchrun (DistributedDataParallel): each process takes its shard of one shared shuffle,
and process 0 alone writes the run folder.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from training import distributed, runs
from training.config import TrainConfig
from training.data import Dataset, load_data, to_tensor
from training.distributed import Session
from training.model import VAE, bits_per_dim, test_elbo

log = logging.getLogger(__name__)


@dataclass
class Run:
    """What one training process holds between epochs."""

    config: TrainConfig
    session: Session
    model: VAE  # the bare module: its state_dict is what checkpoints hold
    step_model: nn.Module  # what the optimiser steps through: DDP(model) under torchrun
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator  # the same on every process, so the shards partition one order
    noise: torch.Generator  # this process's binarization or dequantization noise
    train_x: torch.Tensor
    test_targets: torch.Tensor  # this process's share of the fixed test targets

    @property
    def batch_per_process(self) -> int:
        return self.config.batch_size // self.session.world_size

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(math.ceil(len(self.train_x) / self.session.world_size) / self.batch_per_process)


def lr_at(config: TrainConfig, progress: float) -> float:
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return config.lr_final + (config.lr - config.lr_final) * cosine


def beta_at(config: TrainConfig, epochs_done: float) -> float:
    warm = config.kl_warmup_epochs
    return config.beta * (min(1.0, epochs_done / warm) if warm else 1.0)


def train_epoch(run: Run, epoch: int) -> dict:
    """One pass over this process's shard of the training set, then the test set."""
    config, model, steps = run.config, run.model, run.steps_per_epoch
    run.step_model.train()
    started = time.perf_counter()
    order = distributed.shard(torch.randperm(len(run.train_x), generator=run.shuffle), run.session)
    sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "images": 0.0}
    for step in range(steps):
        for group in run.optimizer.param_groups:
            group["lr"] = lr_at(config, (epoch * steps + step) / (config.epochs * steps))
        beta = beta_at(config, epoch + step / steps)
        batch = run.train_x[order[step * run.batch_per_process : (step + 1) * run.batch_per_process]]
        batch = model.training_targets(batch, run.noise).to(run.session.device)
        if config.iw_samples > 1:
            terms = model.iwae_loss(batch, run.step_model(batch, samples=config.iw_samples))
        else:
            terms = model.loss(batch, run.step_model(batch), beta=beta)
        if not torch.isfinite(terms.loss):
            # Stop before a non-finite step reaches the weights or a checkpoint.
            raise SystemExit(
                f"training: the loss became {terms.loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                "resume from the last checkpoint with a lower --lr or a --grad-clip"
            )
        run.optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(run.step_model.parameters(), config.grad_clip)
        run.optimizer.step()
        for key in ("loss", "recon", "kl"):
            sums[key] += getattr(terms, key).item() * len(batch)
        sums["images"] += len(batch)
    train_seconds = time.perf_counter() - started
    train_means = _means(distributed.sum_over_processes(sums, run.session))
    test_means = test_set_metrics(run)
    record: dict[str, object] = {
        "epoch": epoch + 1,
        **{f"train_{k}": round(v, 4) for k, v in train_means.items()},
        **{f"test_{k}": round(v, 4) for k, v in test_means.items()},
    }
    if model.dequantizes:
        record["test_bits_per_dim"] = round(bits_per_dim(test_means["neg_elbo"], math.prod(model.arch.image_shape)), 4)
        record["sigma_per_channel"] = [round(s, 4) for s in model.log_scale.detach().exp().flatten().tolist()]
    return {**record, "lr": run.optimizer.param_groups[0]["lr"], "beta": beta, "epoch_seconds": round(train_seconds, 2)}


def test_set_metrics(run: Run) -> dict[str, float]:
    """Test negative ELBO over all processes' shards."""
    count = len(run.test_targets)
    means = test_elbo(run.model, run.test_targets) if count else {"neg_elbo": 0.0, "recon": 0.0, "kl": 0.0}
    totals = {key: value * count for key, value in means.items()}
    return _means(distributed.sum_over_processes({**totals, "images": float(count)}, run.session))


def _means(sums: dict[str, float]) -> dict[str, float]:
    images = max(sums.pop("images"), 1.0)
    return {key: value / images for key, value in sums.items()}


def train(
    config: TrainConfig,
    out_dir: Path,
    resume: bool = False,
    dataset: Dataset | None = None,
    threads: int | None = None,
) -> Path:
    """Train (or resume) a run in out_dir, alone or as one of torchrun's processes; returns out_dir."""
    session = distributed.start(threads)
    try:
        with distributed.main_process_first(session):
            dataset = dataset or load_data(config)
        config.image_shape = dataset.image_shape
        run = set_up(config, dataset, session)
        out_dir.mkdir(parents=True, exist_ok=True)
        start_epoch = resume_or_start(run, out_dir, resume)
        if session.is_main:
            runs.write_data_summary(out_dir, data_summary(dataset))
        progress = dict(initial=start_epoch, total=config.epochs, unit="epoch", disable=not session.is_main)
        epochs = tqdm(range(start_epoch, config.epochs), **progress)
        for epoch in epochs:
            record = train_epoch(run, epoch)
            epochs.set_postfix(loss=record["train_loss"], kl=record["train_kl"], test_elbo=record["test_neg_elbo"])
            state = checkpoint_state(run, epoch + 1)
            if session.is_main:
                runs.save_checkpoint(out_dir, state)
                runs.append_metrics(out_dir, record)
    finally:
        distributed.finish(session)
    return out_dir


def set_up(config: TrainConfig, dataset: Dataset, session: Session) -> Run:
    if config.batch_size % session.world_size:
        raise SystemExit(f"--batch-size {config.batch_size} must be a multiple of the {session.world_size} processes")
    torch.manual_seed(config.seed)  # the same initial weights in every process
    model = config.build_model().to(session.device)
    if config.init_from:
        start, _ = runs.load_any_model(Path(config.init_from))
        try:
            model.load_state_dict(start.state_dict())
        except RuntimeError as error:
            raise SystemExit(f"--init-from {config.init_from}: another architecture ({error})") from None
    if session.distributed:
        torch.manual_seed(config.seed + session.rank)  # but different z noise per process
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    test_x = to_tensor(dataset.test.images, config.limit_test)
    test_targets = model.evaluation_targets(test_x)[session.rank :: session.world_size].to(session.device)
    step_model = DistributedDataParallel(model) if session.distributed else model
    return Run(
        config=config,
        session=session,
        model=model,
        step_model=step_model,
        optimizer=optimizer,
        shuffle=torch.Generator().manual_seed(config.seed),
        noise=torch.Generator().manual_seed(config.seed + 1 + session.rank),
        train_x=to_tensor(dataset.train.images, config.limit_train),
        test_targets=test_targets,
    )


def checkpoint_state(run: Run, epochs_done: int) -> dict:
    """Weights, optimiser and every process's random streams (collective: every process calls it)."""
    streams = {"noise": run.noise.get_state(), "torch_rng": torch.get_rng_state()}
    if run.session.device.type == "cuda":
        streams["cuda_rng"] = torch.cuda.get_rng_state(run.session.device)
    return {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "generator": run.shuffle.get_state(),
        "process_streams": distributed.gather(streams, run.session),
        "epoch": epochs_done,
    }


def resume_or_start(run: Run, out_dir: Path, resume: bool) -> int:
    """Load the checkpoint for --resume (else refuse to overwrite one); returns the first epoch to run."""
    config, session = run.config, run.session
    start_epoch = 0
    if runs.has_checkpoint(out_dir):
        if not resume:
            raise SystemExit(f"{out_dir / runs.CHECKPOINT} exists; pass --resume or choose another output folder")
        saved = runs.read_config(out_dir)
        saved.epochs = config.epochs  # resuming may extend the schedule, nothing else
        if saved != config:
            raise SystemExit(f"--resume: {out_dir / runs.CONFIG} differs from the requested configuration")
        state = runs.load_checkpoint(out_dir, map_location=session.device)
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        run.shuffle.set_state(state["generator"].cpu())
        _restore_streams(run, state, out_dir)
        start_epoch = int(state["epoch"])
    distributed.barrier(session)  # every process has read config.json before process 0 rewrites it
    if session.is_main:
        runs.write_config(out_dir, config)
    return start_epoch


def data_summary(dataset: Dataset) -> dict:
    return {
        "name": dataset.name,
        "image_shape": list(dataset.image_shape),
        "class_names": list(dataset.classes),
        "train_images": len(dataset.train.images),
        "test_images": len(dataset.test.images),
        **({"source": dataset.source} if dataset.source else {}),
    }


def _restore_streams(run: Run, state: dict, out_dir: Path) -> None:
    streams = state.get("process_streams", [])
    if len(streams) == run.session.world_size:
        mine = streams[run.session.rank]
        run.noise.set_state(mine["noise"].cpu())
        torch.set_rng_state(mine["torch_rng"].cpu())
        if "cuda_rng" in mine and run.session.device.type == "cuda":
            torch.cuda.set_rng_state(mine["cuda_rng"].cpu(), run.session.device)
        return
    # Another process count: the shuffle continues exactly, the per-process noise restarts from seeds.
    epoch, rank = int(state["epoch"]), run.session.rank
    run.noise.manual_seed(run.config.seed + 1 + rank + 1000 * epoch)
    torch.manual_seed(run.config.seed + rank + 1000 * epoch)
    if run.session.is_main:
        written_by, now = len(streams), run.session.world_size
        log.warning("%s: saved by %d processes, resumed by %d: noise restarts from seeds", out_dir, written_by, now)
