#!/usr/bin/env bash
# Builds the npm package into pkg/: two wasm modules with their wasm-bindgen glue, the JavaScript
# API (js/) and the manifest (pkg.json).
#   pkg/cpu/  the CPU module (burn flex, SIMD128), always loaded
#   pkg/gpu/  the WebGPU module (burn-wgpu), fetched only where the browser offers an adapter
# Needs: rustup target wasm32-unknown-unknown; wasm-bindgen-cli matching Cargo.lock's wasm-bindgen.
#   MOBILECLIP_WASM_FEATURES  cargo features of the CPU module (default "web"; "web,ndarray"
#                             builds the ndarray variant the benchmark compares against)
#   MOBILECLIP_GPU            0 skips the WebGPU module (default 1)
#   MOBILECLIP_PKG_OUT        output folder (default pkg)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${MOBILECLIP_PKG_OUT:-pkg}
target=${CARGO_TARGET_DIR:-target}

# module <cargo features> <folder>
module() {
  cargo build --target wasm32-unknown-unknown --release --no-default-features --features "$1"
  mkdir -p "$out/$2"
  # The name section (function names, ~20 % of the GPU module) only helps profiling: dropped.
  # __wbg_reset_state replaces an instance that trapped (js/index.js).
  wasm-bindgen --target web --remove-name-section --experimental-reset-state-function --out-dir "$out/$2" "$target/wasm32-unknown-unknown/release/mobileclip_wasm.wasm"
}

rm -rf "$out" && mkdir -p "$out"
module "${MOBILECLIP_WASM_FEATURES:-web}" cpu
if [ "${MOBILECLIP_GPU:-1}" != 0 ]; then module webgpu gpu; fi
cp js/*.js js/*.d.ts "$out/"
cp pkg.json "$out/package.json"
cp README.md "$out/" 2>/dev/null || true
ls -l "$out"/*/*.wasm
