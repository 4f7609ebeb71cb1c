#!/usr/bin/env bash
# Where batch-1 decode time goes inside a real graph-replayed, PDL-overlapped step (per-op
# events cannot show it): the headline batch-1 bench with the fused small-step path on and off,
# and with each op class left out in turn
# (TWINFER_ABLATE; those runs' tokens are garbage, only their time means something).
#   scripts/gpu_decode_ablation.sh [BIN_DIR] [OUT_DIR]   (defaults: build, decode_ablation_out)
set -uo pipefail
BIN=${1:-build}
OUT=${2:-decode_ablation_out}
mkdir -p "$OUT"
D1="--model llama-3-8b --workload synthetic --max-model-len 4096 --num-requests 1 --input-len fixed:128 --output-len fixed:256 --temperature 0"
run() {  # name, env assignments..., then --
  local name=$1; shift
  env "$@" timeout 120 "$BIN/twinfer" bench $D1 --json "$OUT/$name.json" > "$OUT/$name.log" 2>&1
  printf '%-22s %s\n' "$name" "$(grep -E 'decode speed|output tok/s' "$OUT/$name.log" | head -2 | sed 's/ \+/ /g' | tr '\n' ' ')"
}
run fused TWINFER_FUSED_DECODE=1
run unfused TWINFER_FUSED_DECODE=0
for op in rope_kv attn_decode qkv o_proj gate_up down lm_head norm; do
  run "fused_without_$op" TWINFER_ABLATE=$op
done
run fused_again TWINFER_FUSED_DECODE=1
