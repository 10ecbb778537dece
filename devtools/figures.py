"""`python -m devtools.figures OUT.png`: the before/after picture in docs/preprocessing.md, made
by the service's own preprocessing (each row: an upload, then what each rule makes of it)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from devtools.images import digit_png_bytes
from service.preprocessing import InputSpec, prepare_images

CELL = 96  # every picture is shown at this size, nearest-neighbour, so pixels stay visible


def _upload_pictures() -> list[tuple[str, bytes]]:
    ink = digit_png_bytes(3, size=200, white_background=True)
    photo = Image.new("RGB", (160, 100), (240, 240, 230))
    draw = ImageDraw.Draw(photo)
    draw.ellipse((40, 15, 120, 85), fill=(200, 40, 40))
    draw.rectangle((70, 40, 150, 70), fill=(40, 90, 200))
    emoji = Image.new("RGBA", (120, 120), (0, 0, 0, 0))
    ImageDraw.Draw(emoji).ellipse((10, 10, 110, 110), fill=(255, 200, 40, 255))
    ImageDraw.Draw(emoji).ellipse((35, 40, 50, 60), fill=(60, 40, 20, 255))
    ImageDraw.Draw(emoji).ellipse((70, 40, 85, 60), fill=(60, 40, 20, 255))
    pictures = []
    for name, image in (("photo", photo), ("transparent", emoji)):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        pictures.append((name, buffer.getvalue()))
    return [("ink on paper", ink), *pictures]


RULES = [
    ("mnist-digit", InputSpec("mnist-digit", (1, 28, 28))),
    ("fashion-product", InputSpec("fashion-product", (1, 28, 28))),
    ("fit, pad (RGB 32x48)", InputSpec("fit", (3, 32, 48), resize="pad")),
    ("fit, crop (RGB 32x32)", InputSpec("fit", (3, 32, 32), resize="crop")),
]


def _tile(array: np.ndarray) -> Image.Image:
    """[C, H, W] in [0, 1] -> an RGB picture CELL high."""
    pixels = np.clip(np.rint(array * 255), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels[0] if len(pixels) == 1 else pixels.transpose(1, 2, 0)).convert("RGB")
    return image.resize((round(CELL * image.width / image.height), CELL), Image.Resampling.NEAREST)


def figure() -> Image.Image:
    rows = []
    for _, data in _upload_pictures():
        source = Image.open(io.BytesIO(data)).convert("RGBA")
        backdrop = Image.new("RGBA", source.size, (128, 128, 128, 255))  # gray shows transparency
        upload = Image.alpha_composite(backdrop, source).convert("RGB")
        tiles = [upload.resize((round(CELL * upload.width / upload.height), CELL))]
        tiles += [_tile(prepare_images([data], spec, 10**8)[0]) for _, spec in RULES]
        rows.append(tiles)
    widths = [max(row[i].width for row in rows) for i in range(len(rows[0]))]
    pad = 8
    canvas = Image.new("RGB", (sum(widths) + pad * (len(widths) + 1), (CELL + pad) * len(rows) + pad + 14), "white")
    draw = ImageDraw.Draw(canvas)
    x = pad
    for index, title in enumerate(["upload", *(name for name, _ in RULES)]):
        draw.text((x, 2), title, fill="black")
        for row_index, row in enumerate(rows):
            canvas.paste(row[index], (x, 16 + pad + row_index * (CELL + pad)))
        x += widths[index] + pad
    return canvas


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/preprocessing.png")
    figure().save(out)
    print(f"wrote {out}")
