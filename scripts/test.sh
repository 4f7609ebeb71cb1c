#!/usr/bin/env bash
# Installs what is missing, builds Release and runs every test through CTest.
# SANITIZE=1 scripts/test.sh builds into build-asan with ASan+UBSan and runs the tests there.
source "$(dirname "$0")/common.sh"
install_missing
if [ "${SANITIZE:-0}" = "1" ]; then
  BUILD_DIR="$ROOT/build-asan"
  configure_and_build "$BUILD_DIR" -DTWINFER_SANITIZE=ON -DTWINFER_BUILD_BENCH=OFF -DTWINFER_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
else
  configure_and_build "$BUILD_DIR"
fi
cd "$BUILD_DIR"
ctest --output-on-failure -j "$JOBS"
