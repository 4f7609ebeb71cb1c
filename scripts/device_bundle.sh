#!/usr/bin/env bash
# Copies the built binaries a GPU-machine run needs into .device/ (git-ignored), which the lent
# machine receives beside the working tree: twinfer, twinfer_tests, twinfer_bench and the shared
# libraries the GPU machine's image lacks (Google Benchmark). Build first:
#   cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device/bin .device/lib
cp build/twinfer build/twinfer_tests build/twinfer_bench .device/bin/
strip .device/bin/*  # the transfer limit is 64 MiB
for lib in $(ldd build/twinfer_bench | awk '/benchmark/ {print $3}'); do cp -L "$lib" .device/lib/; done
du -sh .device
