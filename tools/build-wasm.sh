#!/usr/bin/env bash
# Builds the npm package into pkg/: the CPU wasm module (burn flex, SIMD128) with its
# wasm-bindgen glue, the JavaScript API (js/) and the manifest (pkg.json).
# Needs: rustup target wasm32-unknown-unknown; wasm-bindgen-cli matching Cargo.lock's wasm-bindgen.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --target wasm32-unknown-unknown --release --no-default-features --features web
rm -rf pkg && mkdir -p pkg/cpu
wasm-bindgen --target web --out-dir pkg/cpu target/wasm32-unknown-unknown/release/mobileclip_wasm.wasm
cp js/index.js js/index.d.ts pkg/
cp pkg.json pkg/package.json
cp README.md pkg/ 2>/dev/null || true
ls -l pkg/cpu/*.wasm
