"""Tiny VAE graphs written with onnx.helper, for tests of "bring your own ONNX": any image shape,
colour, flat or spatial latents, other tensor names, and the faults `python -m service package`
must refuse (random ops, a fixed batch axis, outputs outside [0, 1]).

The weights are fixed by a seed, so the graphs are deterministic (unless `random_op`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18
IR_VERSION = 8


@dataclass(frozen=True)
class TinyVAE:
    image_shape: tuple[int, int, int] = (3, 12, 16)
    latent_shape: tuple[int, ...] = (2, 3, 4)
    image_name: str = "image"
    mu_name: str = "mu"
    logvar_name: str = "logvar"
    z_name: str = "z"
    output_name: str = "image"
    split_output: str | None = None  # one encoder output holding mu and logvar along axis 1
    logits: bool = False  # the decoder leaves out its sigmoid
    random_op: bool = False  # the decoder adds RandomNormalLike noise
    fixed_batch: bool = False  # batch axis 1 instead of symbolic
    seed: int = 0

    @property
    def pixels(self) -> int:
        return math.prod(self.image_shape)

    @property
    def latent_dim(self) -> int:
        return math.prod(self.latent_shape)

    def _batch(self) -> int | str:
        return 1 if self.fixed_batch else "N"

    def encoder(self) -> onnx.ModelProto:
        rng = np.random.default_rng(self.seed)
        d = self.latent_dim
        weights = (rng.standard_normal((self.pixels, 2 * d)) / math.sqrt(self.pixels)).astype(np.float32)
        weights[:, d:] *= 0.1  # small log-variances
        bias = np.r_[np.zeros(d), np.full(d, -0.5)].astype(np.float32)
        initializers = [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")]
        if self.split_output:
            joint = np.array([-1, 2 * self.latent_shape[0], *self.latent_shape[1:]], np.int64)
            initializers.append(numpy_helper.from_array(joint, "joint_shape"))
        else:
            initializers.append(numpy_helper.from_array(np.array([-1, *self.latent_shape], np.int64), "latent_shape"))
        nodes = [
            helper.make_node("Flatten", [self.image_name], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["projected"]),
            helper.make_node("Add", ["projected", "b"], ["joint"]),
        ]
        batch = self._batch()
        if self.split_output:
            nodes.append(helper.make_node("Reshape", ["joint", "joint_shape"], [self.split_output]))
            joint_shape = [batch, 2 * self.latent_shape[0], *self.latent_shape[1:]]
            outputs = [helper.make_tensor_value_info(self.split_output, TensorProto.FLOAT, joint_shape)]
        else:
            nodes.append(helper.make_node("Split", ["joint"], ["mu_flat", "logvar_flat"], axis=1, num_outputs=2))
            nodes.append(helper.make_node("Reshape", ["mu_flat", "latent_shape"], [self.mu_name]))
            nodes.append(helper.make_node("Reshape", ["logvar_flat", "latent_shape"], [self.logvar_name]))
            outputs = [
                helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, *self.latent_shape])
                for name in (self.mu_name, self.logvar_name)
            ]
        inputs = [helper.make_tensor_value_info(self.image_name, TensorProto.FLOAT, [batch, *self.image_shape])]
        return self._model(helper.make_graph(nodes, "tiny-encoder", inputs, outputs, initializers))

    def decoder(self) -> onnx.ModelProto:
        rng = np.random.default_rng(self.seed + 1)
        weights = (rng.standard_normal((self.latent_dim, self.pixels)) * 2.0).astype(np.float32)
        initializers = [
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(np.array([-1, *self.image_shape], np.int64), "image_shape"),
        ]
        source = self.z_name
        nodes = []
        if self.random_op:
            nodes.append(helper.make_node("RandomNormalLike", [self.z_name], ["noise"], scale=0.1))
            nodes.append(helper.make_node("Add", [self.z_name, "noise"], ["noisy"]))
            source = "noisy"
        nodes.append(helper.make_node("Flatten", [source], ["flat"], axis=1))
        nodes.append(helper.make_node("MatMul", ["flat", "w"], ["logits"]))
        last = "logits"
        if not self.logits:
            nodes.append(helper.make_node("Sigmoid", ["logits"], ["probabilities"]))
            last = "probabilities"
        nodes.append(helper.make_node("Reshape", [last, "image_shape"], [self.output_name]))
        batch = self._batch()
        inputs = [helper.make_tensor_value_info(self.z_name, TensorProto.FLOAT, [batch, *self.latent_shape])]
        outputs = [helper.make_tensor_value_info(self.output_name, TensorProto.FLOAT, [batch, *self.image_shape])]
        return self._model(helper.make_graph(nodes, "tiny-decoder", inputs, outputs, initializers))

    def _model(self, graph: onnx.GraphProto) -> onnx.ModelProto:
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="devtools")
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        return model

    def write(self, folder: Path) -> tuple[Path, Path]:
        """encoder.onnx and decoder.onnx in `folder` (created)."""
        folder.mkdir(parents=True, exist_ok=True)
        encoder, decoder = folder / "encoder.onnx", folder / "decoder.onnx"
        onnx.save(self.encoder(), encoder)
        onnx.save(self.decoder(), decoder)
        return encoder, decoder
