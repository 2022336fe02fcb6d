#!/usr/bin/env bash
# Benchmarks: writes BENCHMARKS.md (`npm run bench`). Generates random-weight full-size checkpoints
# with the PyTorch reference (cached in target/bench-fixtures), times the native CPU path beside
# PyTorch eager (benches/native.rs + benches/torch_eager.py, 1 and 2 threads), our wasm
# modules in headless Chromium (and their batch sizes: benches/batch.mjs; cold start from the Cache
# API: benches/cold-start.mjs), compact files' sizes and accuracy (tools/compact-accuracy.sh), and
# side by side in one run in each browser engine (Chromium, Firefox, WebKit; MOBILECLIP_ENGINES
# narrows it): our CPU module on 1 and N threads against onnxruntime-web and LiteRT.js on the same
# models (ONNX and .tflite exported from the reference, benches/export.py), and PyTorch eager
# natively (benches/compare.mjs); the WebGPU work per call of ours and onnxruntime-web's
# (benches/gpu-counts.mjs).
#   tools/bench.sh           the full benchmark (about an hour on 2 cores)
#   tools/bench.sh --quick   the side-by-side harness end to end on two small committed fixtures
#                            (v1-mci-mct, v2-mci0: export, conversion, every runtime in every
#                            engine, parity), one round, and benches/batch.mjs at batches 1-2 with
#                            100 labels, written to target/bench-quick.md, not
#                            BENCHMARKS.md: CI runs it so that the harness cannot rot; its figures
#                            are printed, never asserted (a few minutes, most of it the bench venv)
#   MOBILECLIP_BENCH_MODELS   comma-separated configs of the native and browser sections (default:
#                             MobileCLIP-S0,MobileCLIP2-S0,MobileCLIP-B); side by side: the S0s of them
#   MOBILECLIP_BENCH_SKIP_PKG=1  reuse pkg/ as it is (CI has just built it)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
if [ "${1:-}" = --quick ]; then quick=1; fi
models=${MOBILECLIP_BENCH_MODELS:-MobileCLIP-S0,MobileCLIP2-S0,MobileCLIP-B}
out=target/bench-fixtures
dirs=() # side by side
if [ $quick = 1 ]; then
  rm -rf target/bench-quick && mkdir -p target/bench-quick # the exports are written next to them
  for m in v1-mci-mct v2-mci0; do cp -r "tests/fixtures/models/$m" target/bench-quick/ && dirs+=("target/bench-quick/$m"); done
else
  source tools/setup.sh
  setup_native # cmake + nasm for the native build (libjpeg-turbo)
  py=$(tools/setup-venv.sh)
  mkdir -p "$out"
  for m in ${models//,/ }; do
    [ -f "$out/$m/io.safetensors" ] || "$py" tools/gen_fixtures.py --full --no-reload-check --out "$out" --models "$m"
    case $m in *-S0) dirs+=("$out/$m") ;; esac
  done
fi
if [ "${MOBILECLIP_BENCH_SKIP_PKG:-0}" != 1 ] || [ ! -f pkg/cpu-mt/mobileclip_wasm_bg.wasm ]; then tools/build-wasm.sh; fi

if [ $quick = 0 ]; then
  # native CPU beside PyTorch eager on 1 and 2 threads (benches/native.rs; it runs alone too)
  MOBILECLIP_BENCH_FIXTURES="$PWD/$out" MOBILECLIP_BENCH_PYTHON="$py" cargo bench --bench native
  # The ndarray variant of the CPU module, for the flex-vs-ndarray comparison (own target dir).
  CARGO_TARGET_DIR=target/ndarray MOBILECLIP_GPU=0 MOBILECLIP_THREADS=0 MOBILECLIP_WASM_FEATURES=web,ndarray \
    MOBILECLIP_PKG_OUT=target/pkg-ndarray tools/build-wasm.sh
  node benches/browser.mjs
  node benches/batch.mjs # batch sizes (CPU time and memory per pass), 10,000 labels' memory
  node benches/cold-start.mjs --write # S0 from the Cache API: checkpoint vs compact image tower
  # compact files: size and accuracy per dtype on trained-looking BatchNorms (fixtures of its own),
  # and the sizes of the models benchmarked above
  tools/compact-accuracy.sh
  tools/compact-accuracy.sh --sizes "$out"
  # peak wasm memory of streamed loads (MobileCLIP2-L-14 too when $MOBILECLIP_FULL_FIXTURES has it)
  node benches/memory.mjs --compact "${MOBILECLIP_FULL_FIXTURES:-$PWD/$out}"
  # conversion: the CLI, a worker and the page's thread side by side (time, peak wasm memory)
  node benches/convert.mjs "${MOBILECLIP_FULL_FIXTURES:-$PWD/$out}"
fi

# Side by side: the bench's own runtimes (benches/package.json, never in the published package)
# and exporters (tools/setup-bench-venv.sh).
if [ ! -f benches/node_modules/.package-lock.json ] || [ benches/package-lock.json -nt benches/node_modules/.package-lock.json ]; then
  npm ci --prefix benches --no-audit --no-fund
fi
bpy=$(tools/setup-bench-venv.sh)
"$bpy" benches/export.py "${dirs[@]}"
flags=()
if [ $quick = 1 ]; then flags+=(--quick); fi
MOBILECLIP_BENCH_PYTHON=$bpy node benches/compare.mjs "${flags[@]}" "${dirs[@]}"
# WebGPU work per call (dispatches, submits, buffers, read-backs), ours vs onnxruntime-web's
# WebGPU EP on the same exports (about 15 minutes on SwiftShader)
if [ $quick = 0 ]; then node benches/gpu-counts.mjs --write "${dirs[@]}"; fi
# Batch sizes and the wasm memory of many labels (benches/batch.mjs); quick: batches 1-2 and 100
# labels into target/bench-quick.md, on the full-size S0 that tools/test.sh writes before this
if [ $quick = 1 ]; then
  if [ -f target/bench-fixtures/MobileCLIP-S0/model.pt ]; then node benches/batch.mjs --quick; else echo "no target/bench-fixtures/MobileCLIP-S0: batch benchmark skipped"; fi
fi
