#!/usr/bin/env bash
# Two builds (or two settings) of the batch-1 decode headline, side by side in one run: the
# variants alternate pass by pass so clock and thermal drift hit both alike, and each pass prints
# decode speed with the graph step split into uploads / graph / sampling (TWINFER_STEP_TIMING).
#   scripts/gpu_decode_ab.sh [-n PASSES] [-o OUT_DIR] NAME=BIN[:VAR=VAL,...] NAME=BIN[:...] ...
# BIN is a twinfer binary; the optional environment applies to that variant only, e.g.
#   scripts/gpu_decode_ab.sh old=/tmp/old/twinfer new=build/twinfer new256=build/twinfer:TWINFER_GEMV_THREADS=256
# Extra bench flags: TWINFER_AB_FLAGS (default: 128-token prompt, 256 new tokens, greedy).
set -uo pipefail
PASSES=3
OUT=decode_ab_out
while getopts "n:o:" opt; do
  case $opt in
    n) PASSES=$OPTARG ;;
    o) OUT=$OPTARG ;;
    *) echo "usage: $0 [-n PASSES] [-o OUT_DIR] NAME=BIN[:VAR=VAL,...] ..." >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ $# -lt 1 ]; then
  echo "usage: $0 [-n PASSES] [-o OUT_DIR] NAME=BIN[:VAR=VAL,...] ..." >&2
  exit 2
fi
for v in "$@"; do
  case $v in *=*) ;; *) echo "$0: '$v': expected NAME=BIN[:VAR=VAL,...]" >&2; exit 2 ;; esac
  spec=${v#*=}
  bin=${spec%%:*}
  [ -x "$bin" ] || { echo "$0: '$bin' (variant ${v%%=*}): not an executable" >&2; exit 2; }
done
mkdir -p "$OUT"
FLAGS=${TWINFER_AB_FLAGS:-"--model llama-3-8b --workload synthetic --max-model-len 4096 --num-requests 1 --input-len fixed:128 --output-len fixed:256 --temperature 0"}
for ((p = 1; p <= PASSES; ++p)); do
  for v in "$@"; do
    name=${v%%=*}
    spec=${v#*=}
    bin=${spec%%:*}
    envs=()
    if [ "$spec" != "$bin" ]; then IFS=',' read -r -a envs <<< "${spec#*:}"; fi
    log="$OUT/${name}_$p.log"
    # shellcheck disable=SC2086
    env TWINFER_STEP_TIMING=1 "${envs[@]}" timeout 300 "$bin" bench $FLAGS > "$log" 2>&1
    printf '%-12s pass %d | %s | %s\n' "$name" "$p" \
      "$(grep -E 'decode speed' "$log" | sed 's/ \+/ /g; s/ per request.*//')" \
      "$(grep -E 'graph steps, mean' "$log" | sed 's/graph steps, mean per step: //')"
    grep -E '^twinfer|error' "$log" | head -2
  done
done
