#!/usr/bin/env bash
# The demo in one command: installs what is missing (tools/setup.sh), builds the npm package
# (tools/build-wasm.sh → pkg/) and the demo page (webpack → dist/), and serves it on
# http://localhost:8080/ (PORT=... to change; Ctrl+C stops).
#   MOBILECLIP_DEMO_SKIP_PKG=1  reuse pkg/ as it is (no cargo build)
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup.sh
setup_wasm
setup_npm
if [ "${MOBILECLIP_DEMO_SKIP_PKG:-0}" != 1 ] || [ ! -f pkg/index.js ]; then tools/build-wasm.sh; fi
npm run --silent build
exec node tools/serve.mjs dist --port "${PORT:-8080}"
