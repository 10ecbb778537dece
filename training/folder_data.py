"""Your own images as a `Dataset`: a folder of PNG, JPEG or WebP files, decoded once and cached.

Layout (class labels come from sub-folder names when every image sits in one):
    pictures/cat/a.png, pictures/dog/b.jpg    classes ("cat", "dog")
    pictures/a.png, pictures/b.webp           no classes
    pictures/train/..., pictures/test/...     the split as given (either layout inside each)
Otherwise `test_fraction` of the files is held out by a hash of each file's relative path, so
adding files never moves the others between the splits.

Each image, in this order: EXIF orientation applied, alpha composited on the background, resized
keeping its aspect ratio (pad: fit inside, pad with the background; crop: cover, centre-crop), then
grey or RGB. The model card names this `fit` with its options; the service treats uploads the same.
The decoded arrays are cached in data/ under a key of the file list (names, sizes, mtimes) and
these settings, and checked against their sha256 when read back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.data import Dataset, Split, default_cache_dir

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
CACHE_VERSION = 1  # bump when decoding changes, so old caches are not reused
log = logging.getLogger(__name__)


class ImageFolderError(ValueError):
    """The folder cannot become a dataset (no images, none readable, a mixed layout)."""


@dataclass(frozen=True)
class FolderSpec:
    root: Path
    size: tuple[int, int]  # (height, width)
    channels: int  # 1 (grey) or 3 (RGB)
    resize: str = "pad"  # "pad" or "crop"
    background: tuple[int, int, int] = (255, 255, 255)
    test_fraction: float = 0.1


@dataclass(frozen=True)
class PlannedImage:
    path: Path
    relative: str
    split: str  # "train" or "test"
    label: str | None


def list_images(root: Path) -> list[Path]:
    """Image files under root, sorted, hidden files and folders left out."""
    found = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found += [Path(directory, n) for n in names if not n.startswith(".") and n.lower().endswith(SUFFIXES)]
    return sorted(found)


def _path_fraction(relative: str) -> float:
    """A stable number in [0, 1) per file: the split does not depend on which other files exist."""
    return int.from_bytes(hashlib.sha256(relative.encode()).digest()[:8], "big") / 2**64


def plan(spec: FolderSpec, files: list[Path]) -> tuple[list[PlannedImage], bool]:
    """Assign every file a split and a class label (or None); True when the folder gave the split."""
    parts = [f.relative_to(spec.root).parts for f in files]
    given_split = all(len(p) > 1 and p[0] in ("train", "test") for p in parts)
    inner = [p[1:] for p in parts] if given_split else parts
    in_class_folder = [len(p) > 1 for p in inner]
    if any(in_class_folder) and not all(in_class_folder):
        loose = [Path(*p).as_posix() for p, nested in zip(parts, in_class_folder, strict=True) if not nested][:3]
        raise ImageFolderError(
            f"{spec.root}: some images are in class sub-folders and some are not (e.g. {', '.join(loose)}); "
            "put every image in a sub-folder named after its class, or none"
        )
    planned = []
    for path, p, q in zip(files, parts, inner, strict=True):
        relative = Path(*p).as_posix()
        if given_split:
            split = p[0]
        else:
            split = "test" if _path_fraction(relative) < spec.test_fraction else "train"
        planned.append(PlannedImage(path, relative, split, q[0] if all(in_class_folder) else None))
    if not given_split and len(planned) > 1 and not any(p.split == "test" for p in planned):
        # A small folder may draw no test image at all: hold out the one with the lowest hash.
        lowest = min(range(len(planned)), key=lambda i: _path_fraction(planned[i].relative))
        planned[lowest] = PlannedImage(planned[lowest].path, planned[lowest].relative, "test", planned[lowest].label)
    return planned, given_split


def decode(path: Path, spec: FolderSpec) -> np.ndarray:
    """One file -> uint8 (C, H, W); raises OSError or ValueError on a file PIL cannot read."""
    from PIL import Image, ImageOps

    height, width = spec.size
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGBA")
        canvas = Image.new("RGBA", image.size, (*spec.background, 255))
        canvas.alpha_composite(image)
        rgb = canvas.convert("RGB")
    if spec.resize == "pad":
        fitted = ImageOps.pad(rgb, (width, height), method=Image.Resampling.LANCZOS, color=spec.background)
    else:
        fitted = ImageOps.fit(rgb, (width, height), method=Image.Resampling.LANCZOS)
    if spec.channels == 1:
        return np.asarray(fitted.convert("L"), dtype=np.uint8)[None]
    return np.asarray(fitted, dtype=np.uint8).transpose(2, 0, 1)


def cache_key(spec: FolderSpec, files: list[Path]) -> str:
    listing = [[f.relative_to(spec.root).as_posix(), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    settings = {
        "version": CACHE_VERSION,
        "size": list(spec.size),
        "channels": spec.channels,
        "resize": spec.resize,
        "background": list(spec.background),
        "test_fraction": spec.test_fraction,
    }
    return hashlib.sha256(json.dumps([settings, listing]).encode()).hexdigest()


def _arrays_checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()


def _decode_all(spec: FolderSpec, planned: list[PlannedImage]) -> dict[str, np.ndarray]:
    decoded: dict[str, list] = {"train": [], "test": []}
    skipped = []
    for item in tqdm(planned, desc=f"decoding {spec.root.name}", unit="image", leave=False, disable=None):
        try:
            decoded[item.split].append((item, decode(item.path, spec)))
        except (OSError, ValueError, SyntaxError) as error:  # PIL's ways of saying "not an image I can read"
            skipped.append(f"{item.relative}: {error}")
    classes = sorted({item.label for item in planned if item.label is not None})
    index = {name: i for i, name in enumerate(classes)}
    arrays: dict[str, np.ndarray] = {}
    for split, pairs in decoded.items():
        # Ordered by path hash: "the first N images" (--limit-train) then mixes the classes.
        pairs.sort(key=lambda pair: _path_fraction(pair[0].relative))
        empty = np.zeros((0, spec.channels, *spec.size), np.uint8)
        arrays[f"{split}_images"] = np.stack([image for _, image in pairs]) if pairs else empty
        arrays[f"{split}_labels"] = np.array([index.get(item.label, 0) for item, _ in pairs], dtype=np.int64)
    arrays["class_names"] = np.array(classes, dtype=str)
    arrays["skipped"] = np.array(skipped, dtype=str)
    return arrays


def _read_cache(path: Path, key: str) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    with np.load(path) as cached:
        arrays = {name: cached[name] for name in cached.files}
    recorded_key, recorded_sum = str(arrays.pop("key")), str(arrays.pop("checksum"))
    if recorded_key != key or recorded_sum != _arrays_checksum(arrays):
        log.warning("%s: cache does not match its key or checksum; decoding the folder again", path)
        return None
    return arrays


def _write_cache(path: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # per process: torchrun ranks may write at once
    np.savez(tmp, key=np.array(key), checksum=np.array(_arrays_checksum(arrays)), **arrays)
    tmp.replace(path)


def load_folder(spec: FolderSpec, cache_dir: Path | None = None) -> Dataset:
    """Decode (or read from the cache) a folder of images into train and test splits."""
    if not spec.root.is_dir():
        raise ImageFolderError(f"{spec.root}: not a folder")
    files = list_images(spec.root)
    if not files:
        raise ImageFolderError(f"{spec.root}: no images ({', '.join(SUFFIXES)}) in it or its sub-folders")
    planned, given_split = plan(spec, files)
    key = cache_key(spec, files)
    cache = (cache_dir or default_cache_dir()) / f"folder-{spec.root.resolve().name}-{key[:16]}.npz"
    arrays = _read_cache(cache, key)
    if arrays is None:
        arrays = _decode_all(spec, planned)
        if len(arrays["train_images"]) + len(arrays["test_images"]) == 0:
            raise ImageFolderError(f"{spec.root}: none of its {len(files)} image files could be read")
        _write_cache(cache, key, arrays)
    skipped = [str(s) for s in arrays["skipped"]]
    if skipped:
        log.warning("%s: skipped %d unreadable files, e.g. %s", spec.root, len(skipped), "; ".join(skipped[:3]))
    for split in ("train", "test"):
        if len(arrays[f"{split}_images"]) == 0:
            raise ImageFolderError(f"{spec.root}: no readable images in the {split} split")
    class_names = tuple(str(c) for c in arrays["class_names"])
    train = Split(arrays["train_images"], arrays["train_labels"])
    test = Split(arrays["test_images"], arrays["test_labels"])
    source = {
        "folder": str(spec.root),
        "image_files": len(files),
        "train_images": len(train.images),
        "test_images": len(test.images),
        "unreadable_skipped": len(skipped),
        "split": "train/ and test/ sub-folders"
        if given_split
        else f"{spec.test_fraction:g} of the files held out by a sha256 of their relative path",
        "cache": str(cache),
    }
    log.info(
        "%s: %d train and %d test images, %s; %d unreadable skipped",
        spec.root,
        len(train.images),
        len(test.images),
        f"{len(class_names)} classes" if class_names else "no classes",
        len(skipped),
    )
    return Dataset(spec.root.resolve().name, train, test, class_names, source)
