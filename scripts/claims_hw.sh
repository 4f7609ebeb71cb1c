#!/usr/bin/env bash
# Hardware side of the issue #7 claims that have no hardware results yet (02, 03, 06-15), split
# into two batches that each fit one ~9-minute GPU command (docs/experiments.md).
#
#   scripts/claims_hw.sh BIN_DIR OUT_ROOT BATCH [--backend cuda|sim] [--trace-dir DIR]
#                        [--startup-s S] [--budget-s S] [--no-estimate]
#
#   BIN_DIR    folder holding the twinfer binary (a CUDA build for --backend cuda)
#   OUT_ROOT   results go to OUT_ROOT/NN_slug/{summary.json,figure.csv,results.json,log.txt},
#              the layout of experiments/results/h100/
#   BATCH      1 or 2; 3 is optional (claim 10 alone, a third command: see docs/experiments.md)
#   --backend  cuda (default, or $CLAIMS_BACKEND) or sim: the same reduced configurations in the
#              simulator, to check the script end to end on any machine
#   --trace-dir folder of mooncake_conversation.jsonl (claim 15); default: the first of
#              shared/data/traces, ../shared/data/traces, ../../shared/data/traces that exists
#
# Hardware runs replay in real time, so each claim runs with a reduced request count (n=) and,
# where a sweep has many points, only the points its verdict reads (the CLAIMS table below).
# Before running, the script simulates every configuration of the batch (a few seconds) and
# prints the predicted wall time: simulated duration + --startup-s (default 15 s) of engine
# start-up per run. It warns when the batch exceeds --budget-s (default 510 s).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# Reduced configurations: "NN|batch|args". n scales request counts; the other arguments pick the
# sweep points the verdict needs (see each experiments/NN_*.lua header). Why each n keeps the
# claim's regime is written in docs/experiments.md.
CLAIMS=(
  "02|1|n=0.2 utils=0.8,0.95"
  "03|1|n=0.4"
  "06|1|n=0.08 big=131072,262144 small=512,16384"
  "07|1|n=0.05 rates=6"
  "11|2|layers70=8"
  "13|1|n=0.1 lens=2048"
  "15|1|max_requests=55"
  "08|2|n=0.06"
  "09|2|n=0.09 sizes=8,16 swap_gib=4"
  "12|2|n=0.085 arrivals=poisson"
  "14|2|n=0.045"
  "10|3|n=0.17"
)

die() { echo "claims_hw.sh: $*" >&2; exit 2; }
usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

(($# >= 3)) || usage
BIN_DIR=$1 OUT_ROOT=$2 BATCH=$3
shift 3
BACKEND=${CLAIMS_BACKEND:-cuda} TRACE_DIR="" STARTUP_S=15 BUDGET_S=510 ESTIMATE=1
while (($#)); do
  case $1 in
    --backend) BACKEND=$2; shift 2 ;;
    --trace-dir) TRACE_DIR=$2; shift 2 ;;
    --startup-s) STARTUP_S=$2; shift 2 ;;
    --budget-s) BUDGET_S=$2; shift 2 ;;
    --no-estimate) ESTIMATE=0; shift ;;
    *) die "unknown argument '$1' (see the header of $0)" ;;
  esac
done
[[ $BATCH == 1 || $BATCH == 2 || $BATCH == 3 ]] || die "BATCH must be 1, 2 or 3, got '$BATCH'"
[[ $BACKEND == cuda || $BACKEND == sim ]] || die "--backend must be cuda or sim, got '$BACKEND'"
TWINFER=$BIN_DIR/twinfer
[[ -x $TWINFER ]] || die "no twinfer binary at $TWINFER"
if ((ESTIMATE)) && ! command -v jq >/dev/null; then
  echo "claims_hw.sh: jq missing: no estimate (the runs need no jq)" >&2
  ESTIMATE=0
fi
if [[ -z $TRACE_DIR ]]; then
  for d in "$ROOT/shared/data/traces" "$ROOT/../shared/data/traces" "$ROOT/../../shared/data/traces"; do
    [[ -f $d/mooncake_conversation.jsonl ]] && { TRACE_DIR=$(cd "$d" && pwd); break; }
  done
fi
TRACE=${TRACE_DIR:-missing}/mooncake_conversation.jsonl
mkdir -p "$OUT_ROOT"
OUT_ROOT=$(cd "$OUT_ROOT" && pwd)

# Entries of this batch as "script|args".
entries=()
for c in "${CLAIMS[@]}"; do
  IFS='|' read -r id b args <<<"$c"
  [[ $b == "$BATCH" ]] || continue
  f=(experiments/"$id"_*.lua)
  [[ -f ${f[0]} ]] || die "no experiment experiments/${id}_*.lua"
  [[ $id == 15 ]] && args+=" trace=$TRACE"
  entries+=("${f[0]}|$args")
done

# One experiment: twinfer exp into DIR, stderr kept as DIR/log.txt. Returns twinfer's status.
run_exp() {
  local script=$1 backend=$2 dir=$3 args=$4
  rm -rf "$dir"; mkdir -p "$dir"
  # shellcheck disable=SC2086  # args is a list of key=value words
  "$TWINFER" exp "$script" --backend "$backend" --out "$dir" --quiet $args >/dev/null 2>"$dir/log.txt"
}

# Predicted wall time of each entry: its simulated duration plus start-up per run.
if ((ESTIMATE)); then
  est_dir=$(mktemp -d)
  trap 'rm -rf "$est_dir"' EXIT
  printf 'batch %s estimate (simulated duration + %s s start-up per run):\n' "$BATCH" "$STARTUP_S"
  printf '  %-34s %5s %9s %9s  %s\n' claim runs sim_s est_s args
  total=0
  for e in "${entries[@]}"; do
    IFS='|' read -r script args <<<"$e"
    name=$(basename "$script" .lua)
    if ! run_exp "$script" sim "$est_dir/$name" "$args"; then
      echo "  $name: the simulated estimate failed:" >&2; tail -3 "$est_dir/$name/log.txt" >&2; exit 1
    fi
    read -r runs sim_s < <(jq -r '[length, (map(.duration_s) | add)] | @tsv' "$est_dir/$name/results.json")
    est=$(jq -n "$sim_s + $runs * $STARTUP_S")
    total=$(jq -n "$total + $est")
    printf '  %-34s %5d %9.1f %9.1f  %s\n' "$name" "$runs" "$sim_s" "$est" "$args"
  done
  printf '  %-34s %5s %9s %9.1f  (budget %s s)\n' total "" "" "$total" "$BUDGET_S"
  if jq -en "$total > $BUDGET_S" >/dev/null; then
    echo "claims_hw.sh: warning: batch $BATCH is predicted to take ${total} s, over the ${BUDGET_S} s budget" >&2
  fi
fi

# The runs themselves, each claim straight into OUT_ROOT so a cut-off command keeps what finished.
failed=0
t0=$(date +%s)
for e in "${entries[@]}"; do
  IFS='|' read -r script args <<<"$e"
  name=$(basename "$script" .lua)
  s=$(date +%s)
  echo "== $name ($BACKEND): $args" >&2
  if run_exp "$script" "$BACKEND" "$OUT_ROOT/$name" "$args"; then
    grep -h '^cuda:\|failed\|skipping' "$OUT_ROOT/$name/log.txt" >&2 || true
    echo "   done in $(($(date +%s) - s)) s (batch so far $(($(date +%s) - t0)) s)" >&2
  else
    failed=$((failed + 1))
    echo "   FAILED after $(($(date +%s) - s)) s; last lines of $name/log.txt:" >&2
    tail -5 "$OUT_ROOT/$name/log.txt" >&2
  fi
done
echo "batch $BATCH ($BACKEND): ${#entries[@]} claims, $failed failed, $(($(date +%s) - t0)) s; results in $OUT_ROOT" >&2
((failed == 0))
