#!/usr/bin/env bash
# The hardware half of issue #8's fidelity matrix: 19 short `twinfer run`s of the Llama-3-8B shape
# (random weights) covering batch sizes, chunked prefill on/off, eager vs CUDA graphs, fp8 KV,
# memory pressure with recompute and swap preemption, the Azure and Mooncake traces at two rates,
# and synthetic offline/Poisson load. Each run's trace time is ~20-65 s; the whole matrix takes
# about 12 minutes on an H100 (start-up included): split it with ONLY= to fit a 10-minute slot.
#
#   scripts/fidelity_runs.sh BIN_DIR OUT_DIR [TRACE_DIR]
#     BIN_DIR    folder holding the `twinfer` binary (e.g. .device/bin, unpacked from
#                scripts/device_bundle.sh's bundle, or build)
#     OUT_DIR    one sub-folder per run is written here (copy them to
#                experiments/results/h100/fidelity/ afterwards)
#     TRACE_DIR  folder with azure_llm_2023_conv.csv and mooncake_conversation.jsonl
#                [default: /work/shared/data/traces]
#   BACKEND=sim scripts/fidelity_runs.sh build /tmp/fid   runs the same matrix in the simulator
#   (a dry run of the script; no GPU). ONLY=name1,name2 runs a subset.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,16p' "$0" >&2
  exit 2
fi
BIN=$1
OUT=$2
TRACES=${3:-/work/shared/data/traces}
BACKEND=${BACKEND:-cuda}
T=$BIN/twinfer
[ -x "$T" ] || { echo "fidelity_runs.sh: no executable $T" >&2; exit 2; }
AZURE=$TRACES/azure_llm_2023_conv.csv
MOON=$TRACES/mooncake_conversation.jsonl
for f in "$AZURE" "$MOON"; do
  [ -f "$f" ] || { echo "fidelity_runs.sh: missing trace $f" >&2; exit 2; }
done
mkdir -p "$OUT"

# Flags every run shares (the five earlier runs used the same): random-weight Llama-3-8B on the
# H100 preset, 8K context.
COMMON=(--backend "$BACKEND" --model llama-3-8b --hardware h100-sxm --max-model-len 8192 --seed 0)
SYN=(--workload synthetic --input-len lognormal:220:0.9 --output-len lognormal:180:0.8)

failed=0
run() {
  local name=$1
  shift
  if [ -n "${ONLY:-}" ] && [[ ",$ONLY," != *",$name,"* ]]; then return 0; fi
  local t0=$SECONDS
  if "$T" run "${COMMON[@]}" "$@" --out "$OUT/$name" > "$OUT/$name.log" 2>&1; then
    printf '%-18s ok   %4ds  %s\n' "$name" $((SECONDS - t0)) \
      "$(jq -r '"\(.finished)/\(.requests) req, \(.steps) steps, \(.duration_s | . * 10 | round / 10) s, \(.preemptions) preempted"' "$OUT/$name/summary.json")"
  else
    printf '%-18s FAILED (%ds), see %s\n' "$name" $((SECONDS - t0)) "$OUT/$name.log"
    tail -5 "$OUT/$name.log" | sed 's/^/    /'
    failed=$((failed + 1))
  fi
}

# Batch size: decode-bound small batches vs large batches (offline: all arrive at 0).
run syn_b8         "${SYN[@]}" --arrival offline --num-requests 96 --max-num-seqs 8
run syn_b256       "${SYN[@]}" --arrival offline --num-requests 600 --max-num-seqs 256
# Eager vs graphs at a mid batch, same workload.
run syn_b48_graphs "${SYN[@]}" --arrival offline --num-requests 240 --max-num-seqs 48
run syn_b48_eager  "${SYN[@]}" --arrival offline --num-requests 240 --max-num-seqs 48 --enforce-eager
# fp8 KV cache.
run syn_fp8        "${SYN[@]}" --arrival offline --num-requests 300 --max-num-seqs 128 --kv-cache-dtype fp8
# Chunked prefill with a small token budget: mixed decode + chunk steps, longer prompts.
run syn_chunked    --workload synthetic --input-len lognormal:1200:0.5 --output-len lognormal:120:0.6 \
                   --arrival poisson --rate 12 --num-requests 240 \
                   --enable-chunked-prefill --max-num-batched-tokens 512
# Memory pressure: a 600-block pool (9,600 tokens) for 64 sequences of ~700 tokens.
run syn_preempt    --workload synthetic --input-len fixed:512 --output-len fixed:192 \
                   --arrival offline --num-requests 160 --max-num-seqs 64 \
                   --num-gpu-blocks-override 600
run syn_swap       --workload synthetic --input-len fixed:512 --output-len fixed:192 \
                   --arrival offline --num-requests 160 --max-num-seqs 64 \
                   --num-gpu-blocks-override 600 --preemption-mode swap --swap-space 4
# Online synthetic load (Poisson) with graphs.
run syn_poisson    "${SYN[@]}" --arrival poisson --rate 16 --num-requests 320
# Azure conversation trace at its own rate and 4x, with and without chunked prefill.
run azure_r1       --workload "$AZURE" --arrival trace --max-requests 45
run azure_r4       --workload "$AZURE" --arrival trace --time-scale 0.25 --max-requests 280
run azure_r4_chunk --workload "$AZURE" --arrival trace --time-scale 0.25 --max-requests 280 \
                   --enable-chunked-prefill --max-num-batched-tokens 2048
# Mooncake conversation trace with prefix caching, at 1x and 2x its rate (prompts above 8K
# fail at admission, as on any 8K-context deployment).
run mooncake_r1    --workload "$MOON" --arrival trace --max-requests 60 --enable-prefix-caching
run mooncake_r2    --workload "$MOON" --arrival trace --time-scale 0.5 --max-requests 110 \
                   --enable-prefix-caching
# The five configurations recorded before this matrix (session 2), re-recorded with it so every
# run reflects the same engine: the repo's trace slices, sampling at temperature 1. The path is
# relative to the repository root (run the script from there), as the twins replay it from there.
HEADS=tests/fixtures
run azure_x1       --workload "$HEADS/azure_conv_head.csv" --arrival trace --temperature 1
run azure_x4       --workload "$HEADS/azure_conv_head.csv" --arrival trace --time-scale 0.25 --temperature 1
run mooncake_pc    --workload "$HEADS/mooncake_head.jsonl" --arrival trace --enable-prefix-caching \
                   --temperature 1
run syn_graphs     "${SYN[@]}" --arrival offline --num-requests 300 --temperature 1
run syn_eager      "${SYN[@]}" --arrival offline --num-requests 300 --temperature 1 --enforce-eager

echo "fidelity_runs.sh: $failed failed; runs in $OUT"
[ "$failed" -eq 0 ]
