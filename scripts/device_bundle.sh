#!/usr/bin/env bash
# Packs the built binaries a GPU-machine run needs into .device/bundle.tar.xz (git-ignored), which
# the lent machine receives beside the working tree (name .device in `carry`): twinfer,
# twinfer_tests, twinfer_bench and the shared libraries the GPU machine's image lacks (Google
# Benchmark). Stripped, the three binaries are ~64 MB, over the 64 MiB transfer limit together
# with the tree; xz brings them to ~30 MB. Build first:
#   cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2
# On the GPU machine, unpack to .device/bin and .device/lib before use:
#   tar xJf .device/bundle.tar.xz -C .device && export LD_LIBRARY_PATH=$PWD/.device/lib
set -euo pipefail
cd "$(dirname "$0")/.."
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" .device
cp build/twinfer build/twinfer_tests build/twinfer_bench "$stage/bin/"
strip "$stage"/bin/*
for lib in $(ldd build/twinfer_bench | awk '/benchmark/ {print $3}'); do cp -L "$lib" "$stage/lib/"; done
rm -rf .device/bin .device/lib
tar cJf .device/bundle.tar.xz -C "$stage" bin lib
du -sh .device/bundle.tar.xz
