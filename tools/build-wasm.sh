#!/usr/bin/env bash
# Builds the npm package into pkg/: the CPU wasm module (burn flex, SIMD128) with its
# wasm-bindgen glue, the JavaScript API (js/) and the manifest (pkg.json).
# Needs: rustup target wasm32-unknown-unknown; wasm-bindgen-cli matching Cargo.lock's wasm-bindgen.
#   MOBILECLIP_WASM_FEATURES  cargo features (default "web"; "web,ndarray" builds the ndarray
#                             variant the benchmark compares against)
#   MOBILECLIP_PKG_OUT        output folder (default pkg)
set -euo pipefail
cd "$(dirname "$0")/.."
features=${MOBILECLIP_WASM_FEATURES:-web}
out=${MOBILECLIP_PKG_OUT:-pkg}
target=${CARGO_TARGET_DIR:-target}
cargo build --target wasm32-unknown-unknown --release --no-default-features --features "$features"
rm -rf "$out" && mkdir -p "$out/cpu"
wasm-bindgen --target web --out-dir "$out/cpu" "$target/wasm32-unknown-unknown/release/mobileclip_wasm.wasm"
cp js/index.js js/index.d.ts js/worker.js js/worker.d.ts js/worker-entry.js "$out/"
cp pkg.json "$out/package.json"
cp README.md "$out/" 2>/dev/null || true
ls -l "$out/cpu/"*.wasm
