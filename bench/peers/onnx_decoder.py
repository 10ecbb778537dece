"""The shipped MNIST decoder as every peer server loads it: the service's session options, CPU only.

Imported by the peer servers beside it, each in its own virtual environment (bench/.venvs/), so it
needs nothing but onnxruntime and numpy. The options are service/registry.py's `session_options`
at its defaults (one intra-op and one inter-op thread, sequential, no spinning): the peers then do
the same arithmetic per row as the service, and `python -m bench.peers --check` compares their
answers with the service's own session bit for bit.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_PATH = Path(os.environ.get("PEER_DECODER", REPO_ROOT / "models" / "mnist" / "decoder.onnx"))
NPY_MEDIA_TYPE = "application/x-npy"


class Decoder:
    """`decode(latents [N, D]) -> images [N, 1, 28, 28]` float32 in [0, 1]."""

    def __init__(self, path: Path = MODEL_PATH) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def decode(self, latents) -> np.ndarray:
        batch = np.asarray(latents, dtype=np.float32)
        return self.session.run([self.output_name], {self.input_name: batch})[0]


def npy_bytes(images: np.ndarray) -> bytes:
    """A float32 .npy file, as the service's `format=npy` answers."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(images, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()
