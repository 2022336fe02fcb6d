#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit + integration tests (small parity fixtures,
# tokenizer corpus, preprocessing), the wasm package in Node and in headless Chromium, then
# full-size parity of shipped models against the PyTorch reference (random weights written by
# tools/gen_fixtures.py into a temporary folder). .ci/run installs what this needs.
#
# Environment:
#   MOBILECLIP_FULL_MODELS   comma-separated configs for the full-size parity run
#                            ("all", the default: every config in configs/; "none" skips it)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors; native and the wasm adapter)"
cargo clippy --release --all-targets -- -D warnings
# the wasm adapter with the WebGPU module's features (a superset of the CPU module's)
cargo clippy --target wasm32-unknown-unknown --release --no-default-features --features webgpu -- -D warnings

step "cargo test --release (unit, tokenizer, preprocessing, small-model parity)"
cargo test --release

step "wasm package (pkg/): build, Node tests, headless Chromium tests, npm pack into plain and webpack 5 apps, the worker helper, the demo page"
tools/build-wasm.sh
node_modules/.bin/tsc -p tests/types/tsconfig.json # the TypeScript declarations, as a user's strict code sees them
node --test tests/js/
node tests/browser/run.mjs
node tests/package/run.mjs
node tests/extension/run.mjs
node tests/worker/run.mjs
# the demo page end to end, on a random-weight full-size MobileCLIP-S0 (written once, kept in target/)
s0=target/bench-fixtures/MobileCLIP-S0/model.pt
[ -f "$s0" ] || "$(tools/setup-venv.sh)" tools/gen_fixtures.py --full --no-reload-check --out target/bench-fixtures --models MobileCLIP-S0
node tests/demo/run.mjs "$s0"

models=${MOBILECLIP_FULL_MODELS:-all}
if [ "$models" != "none" ]; then
  step "full-size parity: $models"
  py=$(tools/setup-venv.sh)
  out=$(mktemp -d -t mobileclip-full.XXXXXX)
  trap 'rm -rf "$out"' EXIT
  select=()
  [ "$models" = "all" ] || select=(--models "$models")
  "$py" tools/gen_fixtures.py --full --no-reload-check --out "$out" "${select[@]}"
  export MOBILECLIP_FULL_FIXTURES="$out"
  cargo test --release --test parity -- --ignored --nocapture full_size_models
  if [ -d "$out/MobileCLIP-S0" ]; then
    cargo test --release --test cli -- --ignored zero_shot_full_size
  fi
  if [ -d "$out/MobileCLIP-S0" ] || [ -d "$out/MobileCLIP2-S0" ]; then
    node tests/browser/run.mjs full # the same checkpoints in headless Chromium (CPU module)
  fi
fi
