#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit + integration tests (small parity fixtures,
# tokenizer corpus, preprocessing), the wasm package in Node and in three browser engines
# (Chromium, Firefox ESR, WebKitGTK: tests/browser/engines.mjs; the demo and the extension in
# Chromium only), then full-size parity of shipped models against the PyTorch reference (random
# weights written by tools/gen_fixtures.py into a temporary folder). .ci/run installs what this
# needs.
#
# Environment:
#   MOBILECLIP_FULL_MODELS   comma-separated configs for the full-size parity run ("shipped",
#                            the default: every config in configs/; "all": those and the v1
#                            models in open_clip's layout, <name>-OpenCLIP, whose layout the small
#                            openclip-* fixtures cover in CI; "none" skips it)
#   MOBILECLIP_NATIVE_GPU    0: the native build and tests without the GPU path (cargo feature
#                            wgpu; default 1: with it, tests/gpu.rs on Mesa's lavapipe)
#   MOBILECLIP_ENGINES       browser engines for the package's browser tests (default
#                            "chromium,firefox,webkit")
set -euo pipefail
cd "$(dirname "$0")/.."

# step TITLE: starts a step, after printing how long the previous one took (and the total so far)
t0=$(date +%s) t_step=$t0
step() {
  local now=$(date +%s)
  [ "$now" = "$t0" ] || printf '==> took %d s (%d s so far)\n' $((now - t_step)) $((now - t0))
  t_step=$now
  printf '\n==> %s\n' "$*"
}

# Native builds with the GPU path (cargo feature wgpu: burn-wgpu, fusion), so that one build serves
# the CPU tests and the GPU parity tests (tests/gpu.rs, on Mesa's lavapipe: .ci/run installs it);
# the feature changes the features of most native dependencies, so a second, CPU-only build would
# rebuild nearly all of them. MOBILECLIP_NATIVE_GPU=0 builds and tests natively without it.
# Cargo.toml's profile `suite`: release for this crate and the CPU code its tests run hot, the
# other dependencies at optimisation level 1 (target/suite/; the CLI there is the one the Node
# tests run, MOBILECLIP_CLI).
native=(--profile suite)
[ "${MOBILECLIP_NATIVE_GPU:-1}" = 0 ] || native+=(--features wgpu)
export MOBILECLIP_CLI="${CARGO_TARGET_DIR:-$PWD/target}/suite/mobileclip"

# Clippy's lints ride on the builds: every stable cargo build below compiles this crate with
# clippy-driver, as `cargo clippy` does (RUSTC_WORKSPACE_WRAPPER; warnings are errors), but with code
# generation, so the dependencies are compiled once for the tests instead of once more in check
# mode for the lints (a cold `cargo clippy` re-checks all of burn, wgpu and cubecl, natively and
# for wasm). Only this crate goes through clippy-driver; the threaded module, built with the
# pinned nightly, goes through that toolchain's clippy-driver (tools/build-wasm.sh). Every cargo
# command of this script keeps the same two variables, so none recompiles this crate without them.
export RUSTC_WORKSPACE_WRAPPER
RUSTC_WORKSPACE_WRAPPER=$(rustup which clippy-driver)
export CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__

step "cargo fmt --check"
cargo fmt --all -- --check

step "native build of all targets with clippy's lints (warnings are errors; with the GPU path)"
cargo test "${native[@]}" --all-targets --no-run

step "cargo test --profile suite --features wgpu (unit, tokenizer, preprocessing, small-model parity on the CPU and on lavapipe)"
cargo test "${native[@]}"

step "wasm package (pkg/): tools/build-wasm.sh (CPU modules: SIMD128, relaxed SIMD, threaded; the WebGPU module), linted as built"
tools/build-wasm.sh

step "the package in Node and in Chromium, Firefox and WebKit; npm pack; the extension; the worker"
node_modules/.bin/tsc -p tests/types/tsconfig.json # the TypeScript declarations, as a user's strict code sees them
node --test tests/js/
node tests/browser/run.mjs
node tests/package/run.mjs
node tests/extension/run.mjs
node tests/worker/run.mjs
# a random-weight full-size MobileCLIP-S0 (written once, kept in target/): the threads suite (in the
# three engines: Firefox runs the threaded module, WebKitGTK must fall back to one thread), the
# demo page end to end, the quick benchmark
step "threads suite and demo page on a full-size random-weight MobileCLIP-S0"
s0=target/bench-fixtures/MobileCLIP-S0
[ -f "$s0/io.safetensors" ] || "$(tools/setup-venv.sh)" tools/gen_fixtures.py --full --no-reload-check --out target/bench-fixtures --models MobileCLIP-S0
node tests/browser/run.mjs threads
node tests/demo/run.mjs "$s0/model.pt"

# In Chromium only (every runtime, 1 and 2 threads, the exports, parity, the batch benchmark): 175 s
# here, where the three engines with the venv's install took 484 s of a cold run (on a machine
# shared with a build); the full benchmark (tools/bench.sh) runs the three.
step "quick side-by-side benchmark in Chromium (figures printed, never asserted: the harness must not rot)"
MOBILECLIP_ENGINES=chromium MOBILECLIP_BENCH_SKIP_PKG=1 tools/bench.sh --quick

models=${MOBILECLIP_FULL_MODELS:-shipped}
if [ "$models" = "shipped" ]; then models=$(cd configs && ls *.json | sed 's/\.json$//' | paste -sd, -); fi
if [ "$models" != "none" ]; then
  step "full-size parity: $models"
  py=$(tools/setup-venv.sh)
  out=$(mktemp -d -t mobileclip-full.XXXXXX)
  trap 'rm -rf "$out"' EXIT
  select=()
  [ "$models" = "all" ] || select=(--models "$models")
  "$py" tools/gen_fixtures.py --full --no-reload-check --out "$out" "${select[@]}"
  export MOBILECLIP_FULL_FIXTURES="$out"
  cargo test "${native[@]}" --test parity -- --ignored --nocapture full_size_models
  if [ -d "$out/MobileCLIP-S0" ]; then
    cargo test "${native[@]}" --test cli -- --ignored zero_shot_full_size
  fi
  if [ -d "$out/MobileCLIP-S0" ] || [ -d "$out/MobileCLIP2-S0" ]; then
    # the same checkpoints in headless Chromium (CPU module; the small fixtures cover the other engines)
    MOBILECLIP_ENGINES=chromium node tests/browser/run.mjs full
  fi
fi
step "done"
