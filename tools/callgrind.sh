#!/usr/bin/env bash
# Instruction counts of the forward passes only (a developer's tool; instruction counts are
# repeatable on a loaded machine, wall time is not):
#   tools/callgrind.sh OUT.cg target/release/examples/forward <fixture dir> image|text [batch] [passes]
# Runs the example under callgrind with instrumentation off while the checkpoint loads, and
# switches it on when the example says "loaded" (FORWARD_PAUSE). Prints the top functions.
set -euo pipefail
out=$1
shift
log=$(mktemp)
FORWARD_PAUSE=2 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$@" 2>"$log" &
pid=$!
until grep -q '^loaded' "$log"; do
  kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.5
done
callgrind_control -i on "$pid" >/dev/null
wait "$pid"
grep -v '^==' "$log" || true
rm -f "$log"
callgrind_annotate "$out" 2>/dev/null | sed -n '/^Ir/,$p' | head -40 | cut -c1-200
