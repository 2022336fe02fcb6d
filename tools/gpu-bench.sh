#!/usr/bin/env bash
# The native GPU benchmark in one command: builds the CLI with burn-wgpu (cargo feature `wgpu`),
# then on wgpu's first hardware adapter (Vulkan / Metal / DX12) times image and text embeddings of
# MobileCLIP-S0, -S2 and -B at batch 1 and 16 (`mobileclip bench`: median of 5 calls after a
# warm-up; synthetic inputs) and counts the GPU kernels one call launches; the CPU backend beside
# it in the same run (the GPU's speed-up). Prints a table; with
# --write also puts it into BENCHMARKS.md ("## Native GPU").
#   tools/gpu-bench.sh [--write] [--allow-software]
# On a machine whose only adapter is a software one (Mesa's lavapipe, WARP) it says so and stops
# (exit 2): those are CPU figures, not a GPU's. --allow-software runs anyway (to try the script);
# the table is then headed as a software adapter's and the section says the hardware figures are
# still pending. Needs: Rust, Node.js, cmake and nasm (installed through apt where missing).
# Weights: random full-size checkpoints (timings do not depend on the values) in
# $MOBILECLIP_BENCH_FIXTURES (default target/bench-fixtures, shared with tools/bench.sh), written
# by tools/gen_fixtures.py --full with the reference venv where missing; to carry the benchmark to
# a GPU machine without that venv, copy those folders along.
#   MOBILECLIP_GPU_BENCH_MODELS   comma-separated (default MobileCLIP-S0,MobileCLIP-S2,MobileCLIP-B)
#   MOBILECLIP_GPU_BENCH_BATCHES  comma-separated (default 1,16)
#   MOBILECLIP_GPU_BENCH_ITERS    timed calls per figure (default 5)
#   CUBECL_WGPU_DEFAULT_DEVICE    another adapter than wgpu's default, e.g. DiscreteGpu(1)
set -euo pipefail
cd "$(dirname "$0")/.."
write=0 software=0
for a in "$@"; do
  case $a in
    --write) write=1 ;;
    --allow-software) software=1 ;;
    *) echo "usage: tools/gpu-bench.sh [--write] [--allow-software]" >&2; exit 64 ;;
  esac
done
models=${MOBILECLIP_GPU_BENCH_MODELS:-MobileCLIP-S0,MobileCLIP-S2,MobileCLIP-B}
batches=${MOBILECLIP_GPU_BENCH_BATCHES:-1,16}
iters=${MOBILECLIP_GPU_BENCH_ITERS:-5}
fixtures=${MOBILECLIP_BENCH_FIXTURES:-target/bench-fixtures}

source tools/setup.sh
setup_native # cmake + nasm for the CLI's JPEG decoder
cargo build --release --features wgpu --bin mobileclip
cli=target/release/mobileclip

adapter=$("$cli" --backend wgpu adapter) || { echo "no GPU adapter could be initialised through wgpu (Vulkan / Metal / DX12)" >&2; exit 2; }
echo "adapter: $adapter"
if [[ $adapter == *'"software":true'* ]]; then
  echo "ONLY A SOFTWARE ADAPTER HERE (a CPU implementation of Vulkan/Metal/DX12): these would not be GPU figures." >&2
  if [ $software = 0 ]; then
    echo "Run this on a machine with a GPU (or pass --allow-software to try the script anyway)." >&2
    exit 2
  fi
fi

for m in ${models//,/ }; do
  if [ ! -f "$fixtures/$m/config.json" ]; then
    py=$(tools/setup-venv.sh)
    "$py" tools/gen_fixtures.py --full --no-reload-check --out "$fixtures" --models "$m"
  fi
done

lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
for m in ${models//,/ }; do
  weights=$(ls "$fixtures/$m"/model.pt "$fixtures/$m"/model.safetensors 2>/dev/null | head -1)
  for backend in wgpu cpu; do # the CPU beside it, same run, same weights: the GPU's speed-up
    "$cli" --backend $backend bench --model "$fixtures/$m/config.json" --weights "$weights" --batch "$batches" --iters "$iters" | tee -a "$lines"
  done
done

ADAPTER=$adapter WRITE=$write ITERS=$iters node --input-type=module - "$lines" <<'EOF'
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { writeSection } from './benches/section.mjs';
const all = readFileSync(process.argv[2], 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const adapter = JSON.parse(process.env.ADAPTER);
const cpu = (r) => all.find((c) => c.backend === 'cpu' && c.model === r.model && c.call === r.call && c.batch === r.batch);
let table = '| model | call | batch | ms per call | ms per item | kernel launches per call | CPU ms per call (same run) | GPU speed-up over the CPU |\n|---|---|---|---|---|---|---|---|\n';
for (const r of all.filter((r) => r.backend === 'wgpu')) {
  const c = cpu(r);
  table += `| ${r.model} | ${r.call} | ${r.batch} | ${r.ms_per_call.toFixed(1)} | ${r.ms_per_item.toFixed(2)} | ${r.launches} | ${c.ms_per_call.toFixed(1)} | ${(c.ms_per_call / r.ms_per_call).toFixed(2)}× |\n`;
}
const measured = `on ${adapter.adapter}, shader-f16 ${adapter.shader_f16 ? 'offered' : 'not offered'}, host CPU ${cpus()[0]?.model ?? 'unknown'}: `
  + `burn-wgpu with fusion and autotuning, f32; median of ${process.env.ITERS} calls after a warm-up call (synthetic inputs: the texts are short prompts, `
  + 'which matters for the causal text tower of MobileCLIP-B; random-weight full-size checkpoints), read-back of the embeddings included. '
  + 'Kernel launches: the compute dispatches one call issues (counted through cubecl\'s launch observer).\n\n';
const section = '## Native GPU\n\n' + (adapter.software
  ? '**Hardware GPU figures are pending**: no GPU was at hand yet. On a machine with one, `tools/gpu-bench.sh --write` '
    + 'replaces this section with MobileCLIP-S0, -S2 and -B image and text at batch 1 and 16 on its first hardware adapter.\n\n'
    + `The table below is **a software adapter's (CPU figures, not a GPU's)**, from \`tools/gpu-bench.sh --allow-software\` ${measured}`
  : `Measured by \`tools/gpu-bench.sh\` ${measured}`) + table;
console.log(`\n${section}`);
if (process.env.WRITE === '1') await writeSection('BENCHMARKS.md', section);
EOF
