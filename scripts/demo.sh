#!/usr/bin/env bash
# Installs what is missing, builds Release, and replays the Azure LLM conversation trace through
# a simulated Llama-3-8B on a simulated H100 SXM, printing the run summary.
source "$(dirname "$0")/common.sh"
install_missing
configure_and_build "$BUILD_DIR"
TRACE="${TRACE:-$ROOT/../shared/data/traces/azure_llm_2023_conv.csv}"
[ -f "$TRACE" ] || TRACE="$ROOT/tests/fixtures/azure_conv_head.csv"
OUT="${OUT:-$ROOT/runs/demo}"
"$BUILD_DIR/twinfer" run --backend sim --model llama-3-8b --hardware h100-sxm \
  --workload "$TRACE" --out "$OUT" "$@"
echo "Outputs in $OUT (open trace.json in Perfetto)."
