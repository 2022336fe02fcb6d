#!/usr/bin/env bash
# Benchmarks: writes BENCHMARKS.md. Generates random-weight full-size checkpoints with the PyTorch
# reference (cached in target/bench-fixtures) and times the native CPU path.
#   MOBILECLIP_BENCH_MODELS  comma-separated configs (default: MobileCLIP-S0,MobileCLIP2-S0,MobileCLIP-B)
set -euo pipefail
cd "$(dirname "$0")/.."
models=${MOBILECLIP_BENCH_MODELS:-MobileCLIP-S0,MobileCLIP2-S0,MobileCLIP-B}
source tools/setup.sh
setup_native # cmake + nasm for the native build (libjpeg-turbo)
out=target/bench-fixtures
py=$(tools/setup-venv.sh)
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
for m in ${models//,/ }; do
  if [ -d "$out/$m" ]; then mv "$out/$m" "$out.tmp/"; else "$py" tools/gen_fixtures.py --full --no-reload-check --out "$out.tmp" --models "$m"; fi
done
rm -rf "$out" && mv "$out.tmp" "$out"
MOBILECLIP_BENCH_FIXTURES="$PWD/$out" cargo bench --bench native
tools/build-wasm.sh
# The ndarray variant of the CPU module, for the flex-vs-ndarray comparison (own target dir).
CARGO_TARGET_DIR=target/ndarray MOBILECLIP_GPU=0 MOBILECLIP_WASM_FEATURES=web,ndarray MOBILECLIP_PKG_OUT=target/pkg-ndarray tools/build-wasm.sh
node benches/browser.mjs
