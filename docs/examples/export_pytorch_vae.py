"""Export a PyTorch VAE's encoder and decoder as the two ONNX graphs the service serves.

    python docs/examples/export_pytorch_vae.py OUT_DIR
    python -m service package --encoder OUT_DIR/encoder.onnx --decoder OUT_DIR/decoder.onnx \
        --name my-vae --out models/my-vae
    VAE_MODEL_DIR=models python -m service serve

Any VAE fits if its encoder maps images [N, C, H, W] in [0, 1] to (mu, logvar) and its decoder
maps a latent [N, *latent_shape] to images [N, C, H, W]. Export the two halves separately, keep
sampling out of the graphs (the service draws eps with a seeded generator), and give the batch
axis a dynamic dimension. This one is a small untrained conv VAE for 3x32x48 images with a
spatial latent [4, 8, 12]; tests/service/test_own_model_example.py runs it end to end.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn


class Encoder(nn.Module):
    def __init__(self, channels: int = 3, latent_channels: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2, padding=1),
            nn.ReLU(),
        )
        self.mu = nn.Conv2d(32, latent_channels, 1)
        self.logvar = nn.Conv2d(32, latent_channels, 1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(image)
        return self.mu(hidden), self.logvar(hidden)


class Decoder(nn.Module):
    def __init__(self, channels: int = 3, latent_channels: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ConvTranspose2d(latent_channels, 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(32, channels, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(z))  # pixel means in [0, 1]; or export logits and say so when packaging


def build() -> tuple[Encoder, Decoder]:
    """The model to export; yours would load its trained weights here."""
    torch.manual_seed(0)
    return Encoder().eval(), Decoder().eval()


def export(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    encoder, decoder = build()
    batch = torch.export.Dim("batch", min=1, max=4096)
    examples = {"encoder": torch.rand(2, 3, 32, 48), "decoder": torch.randn(2, 4, 8, 12)}  # a batch of 2 or more
    torch.onnx.export(
        encoder,
        (examples["encoder"],),
        out / "encoder.onnx",
        input_names=["image"],
        output_names=["mu", "logvar"],
        dynamic_shapes=({0: batch},),
        dynamo=True,
        external_data=False,
    )
    torch.onnx.export(
        decoder,
        (examples["decoder"],),
        out / "decoder.onnx",
        input_names=["z"],
        output_names=["image"],
        dynamic_shapes=({0: batch},),
        dynamo=True,
        external_data=False,
    )


if __name__ == "__main__":
    export(Path(sys.argv[1] if len(sys.argv) > 1 else "exported"))
