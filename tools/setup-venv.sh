#!/usr/bin/env bash
# Creates (once) the Python venv holding the PyTorch reference: torch, timm, open_clip_torch.
# Usage: tools/setup-venv.sh [DIR]   (default: .venv-ref in the repo root). Prints the venv's python.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-${MOBILECLIP_VENV:-$root/.venv-ref}}
req="$root/tools/requirements-ref.txt"
stamp="$dir/.requirements-ref.txt"
# one creator at a time (.ci/run starts this in the background while it builds; tools/test.sh's
# own call then waits here for it instead of installing into the same folder)
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if [ ! -x "$dir/bin/python" ] || ! cmp -s "$req" "$stamp"; then
  python3 -m venv "$dir" >&2
  "$dir/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  cp "$req" "$stamp"
fi
echo "$dir/bin/python"
