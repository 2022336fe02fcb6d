#!/usr/bin/env bash
# Installs what building the npm package and the demo needs, when missing: the wasm32 Rust
# target, the pinned nightly toolchain of the threaded module (with rust-src, and clippy to lint
# it as it is built; about 40 s to download), wasm-bindgen-cli of the version in Cargo.lock (3-6
# minutes to build cold on 2 cores) and the npm devDependencies (webpack, playwright-core,
# puppeteer-core); for the browser tests, the three engines from Debian (setup_browsers). Needs
# Rust (rustup) and Node.js >= 20.9.
# The native build (CLI, tests) also needs cmake and nasm: the CLI's JPEG decoder,
# libjpeg-turbo, is built from source (setup_native, Debian packages).
# Sourced by .ci/run, tools/demo.sh and tools/build-wasm.sh; `tools/setup.sh` runs setup_native,
# setup_wasm and setup_npm on their own, `tools/setup.sh browsers` the browsers too.

# The threaded CPU module rebuilds std with atomics (`-Z build-std`): a nightly toolchain, pinned
# to the one this machine's image carries (rustc 1.97.0-nightly e50aa6fba 2026-05-19).
MOBILECLIP_NIGHTLY=${MOBILECLIP_NIGHTLY:-nightly-2026-05-20}

# apt_install PACKAGE...: installs the Debian packages not yet installed (as root).
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]} (Debian packages)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
}

# cmake and nasm build libjpeg-turbo (the turbojpeg crate), with which the CLI decodes JPEG
# bit-exactly as Pillow does.
setup_native() {
  apt_install cmake nasm
}

setup_wasm() {
  rustup target add wasm32-unknown-unknown >/dev/null
  if [ ! -d "$(rustc "+$MOBILECLIP_NIGHTLY" --print sysroot 2>/dev/null)/lib/rustlib/src/rust/library" ] ||
    ! rustc "+$MOBILECLIP_NIGHTLY" --print target-libdir --target wasm32-unknown-unknown >/dev/null 2>&1; then
    echo "installing the $MOBILECLIP_NIGHTLY toolchain with rust-src and clippy (threaded module)" >&2
    rustup toolchain install "$MOBILECLIP_NIGHTLY" --profile minimal --component rust-src --component clippy --target wasm32-unknown-unknown
  elif ! rustup which --toolchain "$MOBILECLIP_NIGHTLY" clippy-driver >/dev/null 2>&1; then
    rustup component add clippy --toolchain "$MOBILECLIP_NIGHTLY"
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
  # npm ci when node_modules is missing or older than the lock file (playwright-core and
  # puppeteer-core drive the system's browsers: neither downloads one)
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  fi
}

# The browser engines the tests run in (tests/browser/engines.mjs), from Debian (as root):
#   chromium             Chromium, driven by playwright-core
#   firefox-esr          Firefox ESR, driven by puppeteer-core over WebDriver BiDi
#   webkit2gtk-driver    WebKitGTK's WebKitWebDriver and MiniBrowser, which needs an X server:
#   xvfb                 (Xvfb)
#   mesa-vulkan-drivers  lavapipe, the software Vulkan driver behind Firefox's WebGPU adapter
BROWSER_PACKAGES=(chromium firefox-esr webkit2gtk-driver xvfb mesa-vulkan-drivers)

setup_browsers() {
  apt_install "${BROWSER_PACKAGES[@]}"
}

# Mesa's lavapipe, a software Vulkan driver: the adapter of the native GPU path's tests
# (tests/gpu.rs, cargo feature wgpu) on machines without a GPU.
setup_gpu() {
  apt_install mesa-vulkan-drivers
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cd "$(dirname "$0")/.."
  setup_native
  setup_wasm
  setup_npm
  if [ "${1:-}" = browsers ]; then setup_browsers; fi
fi
