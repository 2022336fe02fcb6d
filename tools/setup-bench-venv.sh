#!/usr/bin/env bash
# Creates (once) the benchmark's own Python venv and prints its python: the reference venv's
# packages (torch, timm, open_clip: seen through a .pth file, not installed twice) plus ONNX
# export and PyPI's litert-torch 0.10 for the .tflite conversion (tools/requirements-bench.txt).
# litert-torch pins torch < 2.15, so it goes in --no-deps; a dependency of its converter (xdsl)
# pins typing-extensions < 4.13, which torch 2.15 cannot import with, so the reference venv's
# typing-extensions is put back over it (the converter runs with it).
# Usage: tools/setup-bench-venv.sh [DIR]   (default: .venv-bench in the repo root)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ref=$("$root/tools/setup-venv.sh")
dir=${1:-${MOBILECLIP_BENCH_VENV:-$root/.venv-bench}}
req="$root/tools/requirements-bench.txt"
stamp="$dir/.requirements-bench.txt"
# one creator at a time (.ci/run starts this in the background; the benchmark's call waits here)
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if [ ! -x "$dir/bin/python" ] || ! cmp -s "$req" "$stamp"; then
  rm -rf "$dir"
  python3 -m venv "$dir" >&2
  site() { "$1" -c 'import site; print(site.getsitepackages()[0])'; }
  site "$ref" >"$(site "$dir/bin/python")/reference-venv.pth"
  pip=("$dir/bin/pip" install -q --disable-pip-version-check)
  "${pip[@]}" -r "$req" >&2
  "${pip[@]}" --no-deps litert-torch==0.10.0 >&2
  "${pip[@]}" --no-deps "typing-extensions==$("$ref" -c 'import importlib.metadata as m; print(m.version("typing-extensions"))')" >&2
  "$dir/bin/python" -c 'import torch, onnx, litert_torch' >&2
  cp "$req" "$stamp"
fi
echo "$dir/bin/python"
