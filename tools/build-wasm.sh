#!/usr/bin/env bash
# Builds the npm package into pkg/: the wasm modules with their wasm-bindgen glue, the
# JavaScript API (js/) and the manifest (pkg.json).
#   pkg/cpu/     the CPU module (burn flex, SIMD128): one thread, loaded when the page cannot
#                run threads (not cross-origin isolated) or `threads: 1` is asked for
#   pkg/cpu-mt/  the threaded CPU module: the same adapter with shared memory and atomics, flex's
#                parallel kernels on a pool of Web Workers (js/threads.js); built with the pinned
#                nightly (tools/setup.sh), std rebuilt with atomics (-Z build-std)
#   pkg/cpu-relaxed/, pkg/cpu-mt-relaxed/  the same two with wasm relaxed SIMD's fused multiply-add
#                in the CPU kernels' inner loops (feature relaxed-simd), loaded instead where the
#                engine validates relaxed SIMD; only their .wasm (the glue is cpu/'s and cpu-mt/'s,
#                checked identical)
#   pkg/gpu/     the WebGPU module (burn-wgpu), fetched only where the browser offers an adapter;
#                shrunk after wasm-bindgen by binaryen's wasm-opt (see shrink)
# Needs: rustup target wasm32-unknown-unknown; wasm-bindgen-cli matching Cargo.lock's wasm-bindgen;
# the nightly toolchain (tools/setup.sh installs all three); npm's devDependencies (binaryen). All builds share one target dir.
#   MOBILECLIP_WASM_FEATURES  cargo features of the CPU module (default "web"; "web,ndarray"
#                             builds the ndarray variant the benchmark compares against)
#   MOBILECLIP_THREADS        0 skips the threaded module (default 1)
#   MOBILECLIP_GPU            0 skips the WebGPU module (default 1)
#   MOBILECLIP_RELAXED        0 skips the relaxed-SIMD variants (default 1)
#   MOBILECLIP_PKG_OUT        output folder (default pkg)
#   MOBILECLIP_KEEP_NAMES     1 keeps the name section (function names in browser CPU profiles)
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup.sh # MOBILECLIP_NIGHTLY
out=${MOBILECLIP_PKG_OUT:-pkg}
target=${CARGO_TARGET_DIR:-target}

# bindgen <folder> [profile]: the glue of the module just built (with cargo profile [profile],
# default release)
bindgen() {
  mkdir -p "$out/$1"
  # The name section (function names, ~20 % of the GPU module) only helps profiling: dropped
  # unless MOBILECLIP_KEEP_NAMES=1. The one-thread CPU module (and its relaxed-SIMD variant, which
  # shares its glue) gets __wbg_reset_state, which replaces an instance that trapped (js/index.js);
  # the threaded one's memory is shared with its pool, it is replaced otherwise.
  local names=(--remove-name-section) reset=()
  [ "${MOBILECLIP_KEEP_NAMES:-0}" = 1 ] && names=()
  case "$1" in cpu | cpu-relaxed) reset=(--experimental-reset-state-function) ;; esac
  wasm-bindgen --target web "${names[@]}" "${reset[@]}" --out-dir "$out/$1" "$target/wasm32-unknown-unknown/${2:-release}/mobileclip_wasm.wasm"
}

# shrink <module.wasm>: binaryen's wasm-opt (npm devDependency `binaryen`), only the passes that
# make the gzipped download smaller: identical functions merged (LTO leaves copies of generic
# code, e.g. two of burn-ir's OperationIr::clone), unreferenced ones dropped. Measured on the
# WebGPU module (benches' node zlib level 9): 3.52 -> 3.47 MB gzipped, raw 15.26 -> 14.76 MB, brotli
# 2.35 -> 2.31; ~15 s of CPU. Its -Oz / -Os shrink the raw module more (12.2 / 13.1 MB) but
# compress worse (3.65 / 3.66 MB gzipped), --merge-similar-functions too (3.46 gzipped, brotli 2.33).
# The features are those rustc's target_features section lists for these modules (wasm-bindgen
# drops that section, so wasm-opt cannot read them).
shrink() {
  [ -x node_modules/.bin/wasm-opt ] || setup_npm
  node_modules/.bin/wasm-opt --enable-bulk-memory --enable-bulk-memory-opt --enable-call-indirect-overlong \
    --enable-multivalue --enable-mutable-globals --enable-nontrapping-float-to-int --enable-reference-types \
    --enable-sign-ext --enable-simd --duplicate-function-elimination --remove-unused-module-elements \
    --strip-debug --strip-producers --vacuum "$1" -o "$1"
}

# module <cargo features> <folder> [profile]
module() {
  cargo build --target wasm32-unknown-unknown --profile "${3:-release}" --no-default-features --features "$1"
  bindgen "$2" "${3:-release}"
}

# The threaded module: atomics and bulk memory (shared memory, the atomic wait/notify the pool's
# locks use) on top of .cargo/config.toml's simd128, in std too (RUSTFLAGS reach every crate).
# Atomics no longer imply a shared memory (rust-lang/rust#147225): the final link asks for one (imported,
# as wasm-bindgen's thread support expects) and exports the thread-local-storage hooks each
# worker's instantiation calls; `cargo rustc` passes those to the final crate only. The memory
# declares a 4 GiB maximum: a shared memory cannot grow past it, and the large models need more
# than rustc's 1 GiB default. Where a build is linted (tools/test.sh sets a stable clippy-driver as
# RUSTC_WORKSPACE_WRAPPER), this one goes through the nightly's own clippy-driver: the stable one
# cannot compile against nightly's std.
threaded_module() { # <cargo features> <folder>
  local lint=()
  [ -z "${RUSTC_WORKSPACE_WRAPPER:-}" ] || lint=("RUSTC_WORKSPACE_WRAPPER=$(rustup which --toolchain "$MOBILECLIP_NIGHTLY" clippy-driver)")
  env -u RUSTC_WORKSPACE_WRAPPER "${lint[@]}" RUSTFLAGS="-C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals -C link-arg=--max-memory=4294967296" \
    cargo "+$MOBILECLIP_NIGHTLY" rustc -Z build-std=panic_abort,std --target wasm32-unknown-unknown --release \
    --no-default-features --features "$1" --lib -- \
    -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--export=__wasm_init_tls \
    -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base
  bindgen "$2"
}

# relaxed <build function> <cargo features> <folder>: the relaxed-SIMD variant of the module in
# <folder> (only this crate is recompiled: the feature enables relaxed-simd per function). It
# keeps only its .wasm: js/index.js loads it with <folder>'s glue, which must be the same but for
# comments (wasm-bindgen's comments name internal function indices, which differ).
relaxed() {
  "$1" "$2,relaxed-simd" "$3-relaxed"
  local code=(grep -v '^[[:space:]]*//')
  for f in mobileclip_wasm.js mobileclip_wasm.d.ts mobileclip_wasm_bg.wasm.d.ts; do
    cmp -s <("${code[@]}" "$out/$3/$f") <("${code[@]}" "$out/$3-relaxed/$f") || { echo "$3-relaxed/$f differs from $3/$f: the modules cannot share their glue" >&2; exit 1; }
    rm "$out/$3-relaxed/$f"
  done
}

rm -rf "$out" && mkdir -p "$out"
module "${MOBILECLIP_WASM_FEATURES:-web}" cpu
if [ "${MOBILECLIP_RELAXED:-1}" != 0 ]; then relaxed module "${MOBILECLIP_WASM_FEATURES:-web}" cpu; fi
if [ "${MOBILECLIP_THREADS:-1}" != 0 ]; then
  threaded_module threads cpu-mt
  if [ "${MOBILECLIP_RELAXED:-1}" != 0 ]; then relaxed threaded_module threads cpu-mt; fi
fi
# the WebGPU module with whole-program LTO (Cargo.toml's profile wasm-gpu): smaller download
if [ "${MOBILECLIP_GPU:-1}" != 0 ]; then
  module webgpu gpu "${MOBILECLIP_GPU_PROFILE:-wasm-gpu}"
  shrink "$out/gpu/mobileclip_wasm_bg.wasm"
fi
cp js/*.js js/*.d.ts "$out/"
cp pkg.json "$out/package.json"
cp README.md "$out/" 2>/dev/null || true
ls -l "$out"/*/*.wasm
