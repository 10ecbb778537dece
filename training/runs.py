"""A run folder on disk: config.json, checkpoint.pt, metrics.jsonl, data.json and eval.json.

train.py writes them, evaluate.py and export.py read them; nothing else knows the file names.
Checkpoints hold tensors and plain values only (state_dicts, RNG states), read back with
`weights_only=True`, so loading a run never unpickles code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from training.config import TrainConfig
from training.model import VAE

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
EVAL = "eval.json"
DATA = "data.json"


def _atomic_write(path: Path, write) -> None:
    """write(tmp_path), then rename over path: a cut-off never leaves a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    tmp.replace(path)


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / CHECKPOINT).exists()


def save_checkpoint(run_dir: Path, state: dict) -> None:
    _atomic_write(run_dir / CHECKPOINT, lambda tmp: torch.save(state, tmp))


def load_checkpoint(run_dir: Path, map_location: str | torch.device = "cpu") -> dict:
    return torch.load(run_dir / CHECKPOINT, map_location=map_location, weights_only=True)


def write_config(run_dir: Path, config: TrainConfig) -> None:
    _atomic_write(run_dir / CONFIG, lambda tmp: tmp.write_text(json.dumps(config.to_dict(), indent=2)))


def read_config(run_dir: Path) -> TrainConfig:
    return TrainConfig.from_dict(json.loads((run_dir / CONFIG).read_text()))


def append_metrics(run_dir: Path, record: dict) -> None:
    with open(run_dir / METRICS, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_eval(run_dir: Path, report: dict) -> None:
    _atomic_write(run_dir / EVAL, lambda tmp: tmp.write_text(json.dumps(report, indent=2)))


def read_eval(run_dir: Path) -> dict:
    """The run's evaluate report, or {} before `evaluate` has run."""
    path = run_dir / EVAL
    return json.loads(path.read_text()) if path.exists() else {}


def load_model(run_dir: Path, map_location: str | torch.device = "cpu") -> tuple[VAE, TrainConfig]:
    """Rebuild the model from a run folder; weights only, never pickled objects."""
    config = read_config(run_dir)
    model = config.build_model()
    model.load_state_dict(load_checkpoint(run_dir, map_location)["model"])
    model.eval()
    return model, config


def load_model_folder(model_dir: Path) -> tuple[VAE, TrainConfig]:
    """Rebuild the torch model of a shipped model folder from its card's training config and the
    weights inside its two ONNX graphs (whose initializers keep the torch parameter names)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    card = json.loads((model_dir / "model.json").read_text())
    config = TrainConfig.from_dict(card["training"]["config"])
    model = config.build_model()
    wanted = model.state_dict()
    state = {}
    for graph, prefix in (("encoder", "encoder."), ("decoder", "")):
        for tensor in onnx.load(str(model_dir / card["files"][graph]["path"])).graph.initializer:
            name = prefix + tensor.name
            if name in wanted:
                state[name] = torch.from_numpy(np.array(numpy_helper.to_array(tensor)))
    if "log_scale" in wanted:  # the learned decoder sigma is not in the graphs; the card rounds it
        sigma = torch.tensor(card["metrics"]["decoder_sigma_per_channel"]).reshape(wanted["log_scale"].shape)
        state["log_scale"] = sigma.log()
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise SystemExit(f"{model_dir}: the graphs do not hold {missing}; is this a model exported by `training`?")
    model.load_state_dict(state)
    model.eval()
    return model, config


def load_any_model(path: Path) -> tuple[VAE, TrainConfig]:
    """A run folder (checkpoint.pt) or a shipped model folder (model.json + graphs)."""
    if has_checkpoint(path):
        return load_model(path)
    if (path / "model.json").exists():
        return load_model_folder(path)
    raise SystemExit(f"{path}: neither a run folder ({CHECKPOINT}) nor a model folder (model.json)")


def write_data_summary(run_dir: Path, summary: dict) -> None:
    """What export needs to know about the training data (class names, its source) without reading it."""
    _atomic_write(run_dir / DATA, lambda tmp: tmp.write_text(json.dumps(summary, indent=2)))


def read_data_summary(run_dir: Path) -> dict:
    path = run_dir / DATA
    return json.loads(path.read_text()) if path.exists() else {}
