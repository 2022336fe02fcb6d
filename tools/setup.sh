#!/usr/bin/env bash
# Installs what building the npm package and the demo needs, when missing: the wasm32 Rust
# target, the pinned nightly toolchain of the threaded module (with rust-src, about 40 s to
# download), wasm-bindgen-cli of the version in Cargo.lock (about 8 minutes to build cold) and the
# npm devDependencies (webpack, playwright-core). Needs Rust (rustup) and Node.js >= 20.9.
# Sourced by .ci/run, tools/demo.sh and tools/build-wasm.sh; `tools/setup.sh` runs it on its own.

# The threaded CPU module rebuilds std with atomics (`-Z build-std`): a nightly toolchain, pinned
# to the one this machine's image carries (rustc 1.97.0-nightly e50aa6fba 2026-05-19).
MOBILECLIP_NIGHTLY=${MOBILECLIP_NIGHTLY:-nightly-2026-05-20}

setup_wasm() {
  rustup target add wasm32-unknown-unknown >/dev/null
  if [ ! -d "$(rustc "+$MOBILECLIP_NIGHTLY" --print sysroot 2>/dev/null)/lib/rustlib/src/rust/library" ] ||
    ! rustc "+$MOBILECLIP_NIGHTLY" --print target-libdir --target wasm32-unknown-unknown >/dev/null 2>&1; then
    echo "installing the $MOBILECLIP_NIGHTLY toolchain with rust-src (threaded module)" >&2
    rustup toolchain install "$MOBILECLIP_NIGHTLY" --profile minimal --component rust-src --target wasm32-unknown-unknown
  fi
  local wb
  wb=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
  if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$wb" ]; then
    echo "installing wasm-bindgen-cli $wb (a one-time build of a few minutes)" >&2
    cargo install wasm-bindgen-cli --version "$wb"
  fi
}

setup_npm() {
  if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 9) ? 0 : 1)' 2>/dev/null; then
    echo "Node.js >= 20.9 is needed (found: $(node --version 2>/dev/null || echo none)); see https://nodejs.org" >&2
    return 1
  fi
  # npm ci when node_modules is missing or older than the lock file
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cd "$(dirname "$0")/.."
  setup_wasm
  setup_npm
fi
