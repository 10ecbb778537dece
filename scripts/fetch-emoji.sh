#!/usr/bin/env bash
# Emoji pictures for the shipped colour model, installed from npm (nothing else is downloaded):
#   emoji-datasource-twitter  Twemoji graphics, CC-BY-4.0 (attribution: Twitter, Inc. and contributors)
#   emoji-datasource-google   Noto Emoji graphics, Apache-2.0 (Google)
# Both packages' own code and metadata are MIT (iamcal/emoji-data). Their 64 px PNGs are laid out as
#   data/emoji/{train,test}/<category>/<code>-<style>.png
# with the packages' categories as class labels (Component, the skin-tone swatches, left out) and the
# default skin tone only. About 10% of the emoji, chosen by a hash of their code, form the test split,
# with both styles of an emoji on the same side. Usage: bash scripts/fetch-emoji.sh [out-folder]
set -euo pipefail
cd "$(dirname "$0")/.."
version=16.0.0  # npm view emoji-datasource-twitter versions; the same release for both styles
src=data/emoji-npm
out=${1:-data/emoji}

if [ -f "$out/SOURCE.json" ]; then
  echo "fetch-emoji: $out is already laid out (remove it to lay it out again)"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-emoji: npm is missing; run: apt-get install -y npm" >&2; exit 1; }
if [ ! -f "$src/node_modules/emoji-datasource-google/package.json" ]; then
  npm install --no-save --no-audit --no-fund --prefix "$src" \
    "emoji-datasource-twitter@$version" "emoji-datasource-google@$version"
fi

.venv/bin/python - "$src/node_modules" "$out" "$version" <<'PY'
import hashlib, json, shutil, sys
from collections import Counter
from pathlib import Path

packages, out, version = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
licences = {"twitter": "CC-BY-4.0 (Twemoji graphics)", "google": "Apache-2.0 (Noto Emoji graphics)"}
counts = Counter()
for style in ("twitter", "google"):
    package = packages / f"emoji-datasource-{style}"
    assert json.loads((package / "package.json").read_text())["version"] == version
    for emoji in json.loads((package / "emoji.json").read_text()):
        if emoji["category"] == "Component" or not emoji[f"has_img_{style}"]:
            continue
        code = emoji["unified"].lower()
        fraction = int.from_bytes(hashlib.sha256(code.encode()).digest()[:8], "big") / 2**64
        split = "test" if fraction < 0.1 else "train"
        category = emoji["category"].lower().replace(" & ", "-and-").replace(" ", "-")
        target = out / split / category / f"{code}-{style}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(package / "img" / style / "64" / emoji["image"], target)
        counts[split] += 1
source = {
    "packages": {f"emoji-datasource-{style}": version for style in licences},
    "image_licences": licences,
    "package_licence": "MIT (iamcal/emoji-data)",
    "images": dict(counts),
}
(out / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n")
print(f"fetch-emoji: {counts['train']} train and {counts['test']} test images in {out}")
PY
