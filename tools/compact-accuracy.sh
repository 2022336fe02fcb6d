#!/usr/bin/env bash
# Compact files' size and accuracy per dtype: writes the "## Compact files" section of
# BENCHMARKS.md (benches/compact.rs; run by tools/bench.sh, or alone). Generates, once, full-size checkpoints whose BatchNorm
# statistics look trained (tools/gen_fixtures.py --full --trained-bn, cached in
# target/accuracy-fixtures) and exports scikit-image's 20 bundled photos (from the reference venv,
# nothing downloaded) to target/accuracy-photos and 5 crops of each (4 corners and the centre, 60 % of
# each side: 120 images, so that the 99 % top-1 bar allows one near-tie to flip) to its crops/ folder
# (the bench counts what is in crops/ as crops, whatever the files are named).
#   MOBILECLIP_ACCURACY_MODELS   comma-separated configs (default: MobileCLIP-S0,MobileCLIP2-S0)
#   MOBILECLIP_REFERENCE         Apple's ml-mobileclip checkout (default: gen_fixtures.py's)
# tools/compact-accuracy.sh --sizes DIR   instead: only the sizes, every model folder of DIR (e.g. the
#   full-size fixtures of tools/gen_fixtures.py --full) x dtype x towers, into the "## Compact file
#   sizes" section; MOBILECLIP_SIZE_MODELS (comma-separated) picks some
set -euo pipefail
# cargo bench with the default features, as tools/bench.sh's native benchmark (cargo bench --bench
# native): the two share one build of the dependencies
if [ "${1:-}" = --sizes ]; then
  dir=$(cd "${2:?--sizes DIR}" && pwd)
  cd "$(dirname "$0")/.."
  MOBILECLIP_SIZE_FIXTURES="$dir" exec cargo bench --bench compact
fi
cd "$(dirname "$0")/.."
models=${MOBILECLIP_ACCURACY_MODELS:-MobileCLIP-S0,MobileCLIP2-S0}
out=target/accuracy-fixtures
photos=target/accuracy-photos
py=$(tools/setup-venv.sh)
mkdir -p "$out"
for m in ${models//,/ }; do
  [ -f "$out/$m/io.safetensors" ] || "$py" tools/gen_fixtures.py --full --trained-bn --no-reload-check --out "$out" --models "$m" \
    ${MOBILECLIP_REFERENCE:+--reference "$MOBILECLIP_REFERENCE"}
done
if [ ! -f "$photos/.done-crops-folder" ]; then
  rm -rf "$photos" && mkdir -p "$photos/crops"
  "$py" - "$photos" <<'PY'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from skimage import data

out = Path(sys.argv[1])
left, right, _ = data.stereo_motorcycle()
photos = {name: getattr(data, name)() for name in (
    "astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "microaneurysms", "moon", "page", "retina", "rocket", "text")}
photos.update(motorcycle_left=left, motorcycle_right=right)
for name, arr in photos.items():
    image = Image.fromarray(np.asarray(arr)).convert("RGB")
    image.save(out / f"{name}.png")
    w, h = image.size
    cw, ch = round(w * 0.6), round(h * 0.6)
    corners = {"nw": (0, 0), "ne": (w - cw, 0), "sw": (0, h - ch), "se": (w - cw, h - ch),
               "c": ((w - cw) // 2, (h - ch) // 2)}
    for tag, (x, y) in corners.items():
        image.crop((x, y, x + cw, y + ch)).save(out / "crops" / f"{name}-{tag}.png")
(out / ".done-crops-folder").write_text("")
PY
fi
# Only the requested models' folders are measured.
sel=target/accuracy-selected
rm -rf "$sel" && mkdir -p "$sel"
for m in ${models//,/ }; do ln -s "$PWD/$out/$m" "$sel/$m"; done
MOBILECLIP_ACCURACY_FIXTURES="$PWD/$sel" MOBILECLIP_ACCURACY_PHOTOS="$PWD/$photos" cargo bench --bench compact
