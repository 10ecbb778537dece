"""Files named in a model card (models/<name>/model.json): their sha256, and adding one with its section.

Torch-free, so projection.py (onnxruntime and numpy only) can use it as well as export, fit-prior
and score-table.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _dump_like(text: str, card: dict) -> str:
    """The card as JSON in the formatting its file already has (indent 2; ensure_ascii either way)."""
    original = json.loads(text)
    for ensure_ascii in (True, False):
        if json.dumps(original, indent=2, ensure_ascii=ensure_ascii) + "\n" == text:
            return json.dumps(card, indent=2, ensure_ascii=ensure_ascii) + "\n"
    ascii_only = all(ord(ch) < 128 for ch in text)
    return json.dumps(card, indent=2, ensure_ascii=ascii_only) + "\n"


def add_to_card(
    model_dir: Path, kind: str, path: Path, section: dict | None = None, labels: list[str] | None = None
) -> dict:
    """Name `path` in the card's files.<kind> with its sha256, store `section` under <kind> when
    given, and fill in `labels` when the card has none; every other byte stays as it was (the card
    is re-read just before writing: others edit cards too). Returns the files entry."""
    card_path = model_dir / "model.json"
    text = card_path.read_text()
    card = json.loads(text)
    ref = {"path": path.name, "sha256": sha256_file(path)}
    card["files"][kind] = ref
    if section is not None:
        card[kind] = section
    if labels and not card.get("labels"):
        card["labels"] = labels
    card_path.write_text(_dump_like(text, card))
    return ref
