#!/usr/bin/env bash
# Runs the issue #7 claim experiments and writes papers/ from their results (docs/experiments.md).
#
#   scripts/make_papers.sh run [--backend sim|cuda] [--label NAME] [--trace-dir DIR] [NN ...]
#       runs experiments/NN_*.lua into experiments/results/<label>/NN_slug/
#       (label: sim for --backend sim, h100 for --backend cuda, unless given)
#   scripts/make_papers.sh papers
#       writes papers/NN_slug.md, papers/fig/NN_slug.png and papers/README.md from
#       experiments/results/sim (required) and experiments/results/h100 (optional)
#   scripts/make_papers.sh all        run (sim) + papers
#
# Needs: jq; gnuplot for figures (skipped with a warning when missing); the twinfer binary
# ($TWINFER, default build/twinfer) for `run`. Every number in a paper comes from a summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TWINFER=${TWINFER:-$ROOT/build/twinfer}
RESULTS=$ROOT/experiments/results
PAPERS=$ROOT/papers
HW_LABEL=${HW_LABEL:-h100}

die() { echo "make_papers.sh: $*" >&2; exit 1; }
command -v jq >/dev/null || die "jq is required (apt-get install -y jq)"

# First candidate trace folder holding the Mooncake trace: shared/ in the checkout (the GPU
# machine's copy), beside it (/work/main -> /work/shared) or two levels up (/work/wt/NAME).
default_trace_dir() {
  for d in "$ROOT/shared/data/traces" "$ROOT/../shared/data/traces" "$ROOT/../../shared/data/traces"; do
    [[ -f $d/mooncake_conversation.jsonl ]] && { (cd "$d" && pwd); return; }
  done
  echo "$ROOT/../shared/data/traces"
}

cmd_run() {
  local backend=sim label="" trace_dir="" ids=()
  while (($#)); do
    case $1 in
      --backend) backend=$2; shift 2 ;;
      --label) label=$2; shift 2 ;;
      --trace-dir) trace_dir=$2; shift 2 ;;
      -*) die "run: unknown option $1" ;;
      *) ids+=("$1"); shift ;;
    esac
  done
  [[ -x $TWINFER ]] || die "no twinfer binary at $TWINFER (build it, or set TWINFER)"
  [[ -n $label ]] || { [[ $backend == sim ]] && label=sim || label=$HW_LABEL; }
  [[ -n $trace_dir ]] || trace_dir=$(default_trace_dir)
  local files=()
  if ((${#ids[@]})); then
    for id in "${ids[@]}"; do files+=(experiments/"$id"_*.lua); done
  else
    files=(experiments/[0-9][0-9]_*.lua)
  fi
  for f in "${files[@]}"; do
    [[ -f $f ]] || die "no experiment $f"
    local name; name=$(basename "$f" .lua)
    local out=$RESULTS/$label/$name
    rm -rf "$out"
    echo "== $name ($backend -> ${out#$ROOT/})" >&2
    local extra=()
    grep -q 'A\.trace' "$f" && extra=(trace="$trace_dir/mooncake_conversation.jsonl")
    "$TWINFER" exp "$f" --backend "$backend" --out "$out" --quiet "${extra[@]}" >/dev/null
  done
}

# ---- papers -------------------------------------------------------------------------------

# jq helpers: number formatting, per-metric status and the paper's verdict.
JQ_LIB='
def num: if type == "number" then
    (if (. | fabs) >= 1000 then (. | round | tostring)
     elif (. | fabs) >= 10 then ((. * 10 | round) / 10 | tostring)
     else ((. * 1000 | round) / 1000 | tostring) end)
  elif . == null then "-" else tostring end;
def status: if .info then "informative"
  elif ((.lo == null or .value >= .lo) and (.hi == null or .value <= .hi)) then "match"
  elif (.dir == "up" and .value > (.ref // 0)) or (.dir == "down" and .value < (.ref // 0)) then "direction only"
  else "contradicts" end;
def range: if .lo != null and .hi != null then "[\(.lo|num), \(.hi|num)]"
  elif .lo != null then ">= \(.lo|num)" elif .hi != null then "<= \(.hi|num)" else "-" end;
def verdict: [.metrics[] | select(.info | not) | status] as $s
  | if (.skipped // false) then {v: "not run", why: "the experiment was skipped (\(.notes[0] // "input missing"))"}
    elif ($s | length) == 0 then {v: "not run", why: "no metrics"}
    elif all($s[]; . == "match") then {v: "confirmed", why: "all \($s|length) checked figures fall in the stated ranges"}
    elif all($s[]; . == "contradicts") then {v: "refuted", why: "none of the \($s|length) checked figures is in range or even moves the claimed way"}
    else {v: "partly", why: "\([$s[] | select(. == "match")] | length) of \($s|length) figures in range, \([$s[] | select(. == "direction only")] | length) move the claimed way but out of range, \([$s[] | select(. == "contradicts")] | length) contradict"} end;
'

# gnuplot script for one figure spec; sim series solid, hardware series (if any) dashed.
make_figure() {
  local sim_dir=$1 hw_dir=$2 png=$3
  command -v gnuplot >/dev/null || { echo "make_papers.sh: gnuplot missing, no figure $png" >&2; return 1; }
  [[ -f $sim_dir/figure.csv ]] || return 1
  local spec; spec=$(jq -c '.figure' "$sim_dir/summary.json")
  local kind x xlabel ylabel y2label logx
  kind=$(jq -r '.kind // "lines"' <<<"$spec"); x=$(jq -r '.x' <<<"$spec")
  xlabel=$(jq -r '.xlabel // ""' <<<"$spec"); ylabel=$(jq -r '.ylabel // ""' <<<"$spec")
  y2label=$(jq -r '.y2label // ""' <<<"$spec"); logx=$(jq -r '.logx // false' <<<"$spec")
  local ys y2s; ys=$(jq -r '.y[]' <<<"$spec"); y2s=$(jq -r '(.y2 // [])[]' <<<"$spec")
  local sources=("$sim_dir/figure.csv|sim|1")
  [[ -f $hw_dir/figure.csv ]] && sources+=("$hw_dir/figure.csv|$HW_LABEL|2")
  # Bars cluster by row: hardware bars join the simulated ones only when both files have the
  # same categories (first column); otherwise (a reduced hardware sweep) they get their own panel.
  local panels=1
  if [[ $kind == bars && ${#sources[@]} == 2 ]] &&
     ! cmp -s <(cut -d, -f1 "$sim_dir/figure.csv") <(cut -d, -f1 "$hw_dir/figure.csv"); then
    panels=2
  fi
  {
    echo "set terminal pngcairo size $((panels == 2 ? 1200 : 900)),520 font 'sans,11'"
    echo "set output '$png'"
    echo "set datafile separator ','"
    echo "set grid; set key outside bottom center horizontal"
    echo "set xlabel \"$xlabel\"; set ylabel \"$ylabel\""
    if [[ $kind == bars ]]; then
      echo "set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8 border -1"
      echo "set xtics rotate by -20 noenhanced; set yrange [0:*]"
    else
      [[ $logx == true ]] && echo "set logscale x 2"
      if [[ -n $y2s ]]; then echo "set y2label \"$y2label\"; set y2tics; set ytics nomirror"; fi
    fi
    ((panels == 2)) && echo "set multiplot layout 1,2"
    local parts=() src file lab dt col
    for src in "${sources[@]}"; do
      IFS='|' read -r file lab dt <<<"$src"
      for col in $ys; do
        if [[ $kind == bars ]]; then parts+=("'$file' using \"$col\":xtic(1) title '$col ($lab)' noenhanced")
        else parts+=("'$file' using \"$x\":\"$col\" with linespoints lw 2 pt 7 dt $dt title '$col ($lab)' noenhanced"); fi
      done
      if [[ $kind != bars ]]; then
        for col in $y2s; do
          parts+=("'$file' using \"$x\":\"$col\" axes x1y2 with linespoints lw 2 pt 5 dt $dt title '$col ($lab, right)' noenhanced")
        done
      fi
      if ((panels == 2)); then
        echo "set title '$lab'"
        (IFS=','; echo "plot ${parts[*]}")
        parts=()
      fi
    done
    if ((panels == 2)); then echo "unset multiplot"; else (IFS=','; echo "plot ${parts[*]}"); fi
  } | gnuplot 2>&1 | { grep -v "^$" >&2 || true; }
  [[ -s $png ]]
}

paper_for() {
  local sim_dir=$1 name; name=$(basename "$sim_dir")
  local hw_dir=$RESULTS/$HW_LABEL/$name md=$PAPERS/$name.md png=$PAPERS/fig/$name.png
  local hw_json=null
  [[ -f $hw_dir/summary.json ]] && hw_json=$(cat "$hw_dir/summary.json")
  local fig_line="(no figure: gnuplot missing or no figure data)"
  if make_figure "$sim_dir" "$hw_dir" "$png"; then fig_line="![$name](fig/$name.png)"; fi
  jq -r --argjson hw "$hw_json" --arg name "$name" --arg fig "$fig_line" --arg hwl "$HW_LABEL" "$JQ_LIB"'
    . as $s | ($s | verdict) as $v | (if $hw then ($hw | verdict) else null end) as $hv |
    "# \($s.id). \($s.title)\n",
    "_Generated by `scripts/make_papers.sh papers` from `experiments/results/sim/\($name)/summary.json`"
      + (if $hw then " and `experiments/results/\($hwl)/\($name)/summary.json`" else "" end) + "; do not edit by hand._\n",
    "**The guide says:** \($s.claim)\n",
    "**Verdict in simulation: \($v.v)**: \($v.why).  ",
    "**Verdict on hardware (\($hwl)):** " + (if $hv then "**\($hv.v)**: \($hv.why)." else "pending (no hardware run yet)." end) + "\n",
    "## Setup\n", "\($s.setup)\n", "Model `\($s.model)`, simulated hardware `\($s.hardware)`, backend `\($s.backend)`.\n",
    (if $hw then "Hardware run: \($hw.setup) Backend `\($hw.backend)` (twinfer'"'"'s CUDA engine, `\($hw.model)` with random bf16 weights)\(if $hw.args == null then "" elif $hw.args == "" then ", no arguments" else ", arguments `" + $hw.args + "`" end): request counts scaled with `n=` and sweeps cut to the points the verdict reads, to fit the GPU time (scripts/claims_hw.sh).\n" else empty end),
    "## Claim vs measurement\n",
    "| figure | guide | pass range | simulation | sim status | hardware (\($hwl)) | hw status |",
    "| --- | --- | --- | ---: | --- | ---: | --- |",
    ($s.metrics | to_entries[] | .key as $i | .value as $m
      | ($hw // {} | .metrics // [] | .[$i]) as $h
      | "| \($m.label) | \($m.guide) | \($m | range) \($m.unit) | \($m.value | num) \($m.unit) | \($m | status) | "
        + (if $h then "\($h.value | num) \($h.unit) | \($h | status)" else "pending (no hardware run yet) | -" end) + " |"),
    "", "## Figure\n", $fig, "",
    "## Simulation details\n", ($s.table_md // ""), "",
    (if $hw then "## Hardware details\n\n" + ($hw.table_md // "") + "\n" else empty end),
    (if (($s.notes // []) | length) > 0 then "## What the simulator cannot express / caveats\n\n" + ([$s.notes[] | "- " + .] | join("\n")) + "\n" else empty end),
    "## Commands\n", "```",
    "cmake --build build --target twinfer",
    "build/twinfer exp experiments/\($name).lua --backend sim --out experiments/results/sim/\($name)" + (if ($s.args // "") == "" then "" else " " + $s.args end),
    (if $hw then "build/twinfer exp experiments/\($name).lua --backend \($hw.backend) --out experiments/results/\($hwl)/\($name)" + (if ($hw.args // "") == "" then "" else " " + $hw.args end) + "   # hardware"
     else "build/twinfer exp experiments/\($name).lua --backend cuda --out experiments/results/\($hwl)/\($name)   # hardware (reduced: scripts/claims_hw.sh)" end),
    "scripts/make_papers.sh papers", "```", "",
    "## Verdict rule\n",
    "Each checked figure is a **match** when it lies in its pass range (the guide'"'"'s number widened by the tolerance shown, or the sign the guide states), **direction only** when it is outside the range but moves the way the guide says (above/below 0, or 1x / 100% for ratios), and **contradicts** otherwise; informative rows are not checked. The paper is **confirmed** when every checked figure matches, **refuted** when every one contradicts, and **partly** otherwise."
  ' "$sim_dir/summary.json" >"$md"
  jq -r --argjson hw "$hw_json" --arg name "$name" "$JQ_LIB"'
    "| \(.id) | [\(.title)](\($name).md) | \(verdict.v) | " + (if $hw then ($hw | verdict.v) else "pending" end) + " | \(verdict.why) |"
  ' "$sim_dir/summary.json"
}

cmd_papers() {
  [[ -d $RESULTS/sim ]] || die "no simulation results in ${RESULTS#$ROOT/}/sim (run: scripts/make_papers.sh run)"
  mkdir -p "$PAPERS/fig"
  local rows=() d
  for d in "$RESULTS"/sim/[0-9][0-9]_*/; do
    d=${d%/}
    [[ -f $d/summary.json ]] || { echo "make_papers.sh: skipping $d (no summary.json)" >&2; continue; }
    rows+=("$(paper_for "$d")")
  done
  {
    echo "# Papers: the tuning guides' claims, reproduced"
    echo
    echo "_Generated by \`scripts/make_papers.sh papers\` from \`experiments/results/\`; do not edit by hand._"
    echo "Issue #7. One experiment per claim (\`experiments/NN_slug.lua\`), run in simulation"
    echo "(\`--backend sim --hardware h100-sxm\`) and, when available, on hardware (\`--backend cuda\`,"
    echo "results under \`experiments/results/$HW_LABEL/\`). docs/experiments.md explains the pipeline."
    echo
    echo "| # | claim | simulation | hardware | why (simulation) |"
    echo "| --- | --- | --- | --- | --- |"
    printf '%s\n' "${rows[@]}"
  } >"$PAPERS/README.md"
  echo "wrote ${#rows[@]} papers and papers/README.md" >&2
}

case ${1:-} in
  run) shift; cmd_run "$@" ;;
  papers) shift; cmd_papers "$@" ;;
  all) shift; cmd_run "$@"; cmd_papers ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
