#!/usr/bin/env bash
# Frame-time benchmark of twinfer-viz on the full Azure conversation trace run, every panel, at
# the given window sizes, static and moving (--bench-motion), under Xvfb when no display is set.
# Prints one markdown row per case: median and p95 of the whole frame, fps at both, and the
# median split into app (UI build), GL render and swap.
#   scripts/viz_bench.sh [TWINFER_VIZ] [FRAMES] [SIZES...]
#   e.g. scripts/viz_bench.sh build/twinfer-viz 100 1600x1000 1280x800
# Runs (made once with build/twinfer, kept): $VIZ_BENCH_DIR/azure (defaults) and azure-bs32
# (--block-size 32), the Compare panel's B.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VIZ="${1:-$ROOT/build/twinfer-viz}"
FRAMES="${2:-100}"
shift $(($# > 2 ? 2 : $#))
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1600x1000 1280x800)
TWINFER="${TWINFER:-$ROOT/build/twinfer}"
TRACE="${TRACE:-/work/shared/data/traces/azure_llm_2023_conv.csv}"
DIR="${VIZ_BENCH_DIR:-/tmp/twinfer-viz-bench}"
mkdir -p "$DIR"
[ -f "$DIR/azure/summary.json" ] || "$TWINFER" run --workload "$TRACE" --out "$DIR/azure" --quiet
[ -f "$DIR/azure-bs32/summary.json" ] || "$TWINFER" run --workload "$TRACE" --block-size 32 --out "$DIR/azure-bs32" --quiet

# One case: xvfb-run (unless a display is there) at the window size, then the report parsed.
bench() {
  local size="$1" panel="$2" motion="$3"
  local args=(--bench-frames "$FRAMES" --size "$size" --panel "$panel")
  [ "$motion" = moving ] && args+=(--bench-motion)
  case "$panel" in
    compare) args+=("$DIR/azure" "$DIR/azure-bs32") ;;
    live) args+=(--live) ;;
    *) args+=("$DIR/azure") ;;
  esac
  local out
  if [ -n "${DISPLAY:-}" ]; then out="$("$VIZ" "${args[@]}")"
  else out="$(xvfb-run -a -s "-screen 0 ${size}x24" "$VIZ" "${args[@]}")"; fi
  echo "$out" | awk -v size="$size" -v panel="$panel" -v motion="$motion" '
    /loaded/ { load = $4 }
    /GL renderer/ { sub(/.*GL renderer /, ""); sub(/, [0-9]+ frames$/, ""); renderer = $0 }
    /app \(UI build\)/ { app = $4 }
    /render \(GL, finished\)/ { render = $4 }
    /swap \(present\)/ { swap = $3 }
    /whole frame/ { p50 = $3; p95 = $4 }
    /draw data/ { vtx = $4 }
    END { printf "| %s | %s | %s | %.1f | %.1f | %.0f | %.0f | %s / %s / %s | %s |\n", panel, size, motion, p50, p95,
          1000 / p50, 1000 / p95, app, render, swap, vtx
          print renderer > "/dev/stderr" }'
}

echo "| panel | size | view | p50 ms | p95 ms | fps p50 | fps p95 | app / render / swap ms (p50) | vertices |"
echo "|---|---|---|---|---|---|---|---|---|"
for size in "${SIZES[@]}"; do
  for panel in timeline kv requests metrics compare live; do
    for motion in static moving; do
      bench "$size" "$panel" "$motion" 2>>"$DIR/renderer.txt"
    done
  done
done
echo "renderer: $(sort -u "$DIR/renderer.txt" | head -1); $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
