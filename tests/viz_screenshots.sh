#!/usr/bin/env bash
# Renders every twinfer-viz panel headless under Xvfb and checks each PNG: the expected size and
# not blank (a share of pixels differs from the background), plus a corrupt run folder that must
# render its error message instead of crashing. Registered with CTest as viz_screenshots.
#   tests/viz_screenshots.sh TWINFER_VIZ TWINFER OUT_DIR
set -euo pipefail
VIZ="$1"
TWINFER="$2"
OUT="$3"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W=1280
H=800
if ! command -v xvfb-run >/dev/null; then
  echo "xvfb-run is missing: apt-get install xvfb xauth libgl1-mesa-dri" >&2
  exit 1
fi
rm -rf "$OUT"
mkdir -p "$OUT"
TRACE="$ROOT/tests/fixtures/azure_conv_head.csv"
"$TWINFER" run --workload "$TRACE" --out "$OUT/run_a" --quiet
"$TWINFER" run --workload "$TRACE" --max-num-seqs 4 --block-size 32 --out "$OUT/run_b" --quiet

# shot NAME MIN_CONTENT ARGS...: render, then check the file with the app's own PNG reader.
shot() {
  local name="$1" min="$2"
  shift 2
  xvfb-run -a -s "-screen 0 ${W}x${H}x24" "$VIZ" --screenshot "$OUT/$name.png" --size "${W}x${H}" \
    --min-content "$min" "$@" 2>"$OUT/$name.stderr"
  "$VIZ" --check-png "$OUT/$name.png" --expect "${W}x${H}" --min-content "$min"
}

for panel in timeline kv requests metrics; do
  shot "$panel" 0.05 --panel "$panel" "$OUT/run_a"
done
shot compare 0.05 --panel compare "$OUT/run_a" "$OUT/run_b"
shot live 0.05 --frames 120 --live --preemption-mode swap --num-gpu-blocks-override 256

# Each panel must look different (the --panel switch works).
if [ "$(md5sum "$OUT"/{timeline,kv,requests,metrics,compare,live}.png | cut -d' ' -f1 | sort -u | wc -l)" != 6 ]; then
  echo "two panels rendered identical screenshots" >&2
  exit 1
fi

# A corrupt run folder: the window shows the error and stderr names the file; no crash.
mkdir -p "$OUT/corrupt"
cp "$OUT/run_a"/* "$OUT/corrupt/"
head -c 200 "$OUT/run_a/steps.csv" >"$OUT/corrupt/steps.csv"
shot corrupt 0.002 --panel timeline "$OUT/corrupt"
grep -q "steps.csv:.*truncated row" "$OUT/corrupt.stderr" || {
  echo "expected the truncated steps.csv to be reported on stderr, got:" >&2
  cat "$OUT/corrupt.stderr" >&2
  exit 1
}
echo "viz screenshots OK: $OUT"
