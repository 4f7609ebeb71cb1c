#!/usr/bin/env bash
# The GPU engine's headline measurements in one run, beside transformers' baselines on the same
# GPU (the figures quoted in docs/performance.md). Needs a CUDA build (twinfer, twinfer_bench)
# and, for the baselines, python3 with torch + transformers.
#   scripts/gpu_bench.sh [BIN_DIR] [OUT_DIR]     (defaults: build, gpu_bench_out)
set -uo pipefail
BIN=${1:-build}
OUT=${2:-gpu_bench_out}
mkdir -p "$OUT"
T="$BIN/twinfer"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
M="--model llama-3-8b --workload synthetic"
run() {  # name, then bench flags
  local name=$1; shift
  timeout 300 "$T" bench $M "$@" --json "$OUT/$name.json" > "$OUT/$name.log" 2>&1
  printf '%-16s %s | %s\n' "$name" "$(grep -E 'output tok/s' "$OUT/$name.log" | sed 's/ \+/ /g')" \
    "$(grep -E 'decode speed|TTFT ' "$OUT/$name.log" | head -2 | sed 's/ \+/ /g' | tr '\n' ' ')"
}
D1="--max-model-len 4096 --num-requests 1 --input-len fixed:128 --output-len fixed:256 --temperature 0"
D32="--max-model-len 4096 --num-requests 32 --input-len fixed:128 --output-len fixed:256 --temperature 0"
run decode_b1_graphs $D1
run decode_b1_eager $D1 --enforce-eager
run decode_b32_graphs $D32
run decode_b32_eager $D32 --enforce-eager
run prefill_4096 --num-requests 1 --input-len fixed:4096 --output-len fixed:1 --max-model-len 8192 --temperature 0
OFF="--max-model-len 4096 --num-requests 1000 --input-len fixed:1024 --output-len fixed:256"
run offline_greedy $OFF --temperature 0 --max-num-seqs 384 --max-num-batched-tokens 8192 --enable-chunked-prefill
run offline_temp1 $OFF --max-num-seqs 384 --max-num-batched-tokens 8192 --enable-chunked-prefill
# 384 sequences of 1,280 tokens overflow the bf16 pool (~446K tokens) and preempt ~60 times;
# 320 fit. fp8 KV halves the cache bytes that decode attention reads and doubles the pool.
run offline_bf16_320 $OFF --temperature 0 --max-num-seqs 320 --max-num-batched-tokens 8192 --enable-chunked-prefill
run offline_fp8 $OFF --temperature 0 --max-num-seqs 512 --max-num-batched-tokens 8192 --enable-chunked-prefill \
  --kv-cache-dtype fp8
timeout 120 "$BIN/twinfer_bench" --benchmark_filter='attention_decode/fast/(bf16|fp8)/B64|gemm_large_t/5/8192/0' \
  --benchmark_min_time=0.2 > "$OUT/kernels.log" 2>&1
grep -E "attention_decode|gemm_large" "$OUT/kernels.log"
if python3 -c 'import torch, transformers' 2>/dev/null; then
  CK=${TWINFER_CHECKPOINT:-/tmp/twinfer_l3}
  [ -f "$CK/model.safetensors" ] || timeout 200 "$T" make-model --shape llama-3-8b --out "$CK" --seed 1 > /dev/null
  timeout 200 python3 scripts/hf_baseline.py "$CK" decode | tee "$OUT/hf_decode.json"
  timeout 300 python3 scripts/hf_baseline.py "$CK" static --batch 64 --input 1024 --output 256 --batches 1 \
    | tee "$OUT/hf_static.json"
fi
