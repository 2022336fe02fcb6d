#!/usr/bin/env bash
# Installs what building the npm package and the demo needs, when missing: the wasm32 Rust
# target, wasm-bindgen-cli of the version in Cargo.lock (about 8 minutes to build cold) and the
# npm devDependencies (webpack, playwright-core). Needs Rust (rustup) and Node.js >= 20.9.
# The native build (CLI, tests) also needs cmake and nasm: the CLI's JPEG decoder, libjpeg-turbo,
# is built from source (setup_native; Debian/Ubuntu packages).
# Sourced by .ci/run and tools/demo.sh; `tools/setup.sh` runs all three on its own.

setup_native() {
  local missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  command -v nasm >/dev/null || missing+=(nasm)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]} (to build libjpeg-turbo for the CLI's JPEG decoding)" >&2
  local sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

setup_wasm() {
  rustup target add wasm32-unknown-unknown >/dev/null
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
  setup_native
  setup_wasm
  setup_npm
fi
