# Shared by demo.sh and test.sh: install missing Debian packages, configure and build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
JOBS="$(nproc 2>/dev/null || echo 2)"

# Debian packages the build and tests need (-dev packages only; the CUDA toolkit is optional).
TWINFER_PACKAGES=(cmake g++ ninja-build catch2 libbenchmark-dev libboost-program-options-dev
  liblua5.4-dev libeigen3-dev zlib1g-dev pkg-config
  # twinfer-viz: Dear ImGui (with its GLFW and OpenGL3 backends), GLFW, OpenGL; Xvfb and Mesa's
  # software renderer for the headless screenshot test.
  libimgui-dev libglfw3-dev libgl-dev xvfb xauth libgl1-mesa-dri)

install_missing() {
  local missing=()
  for p in "${TWINFER_PACKAGES[@]}" "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "== installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "Missing packages: ${missing[*]}" >&2
    echo "Install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

configure_and_build() {
  local dir="$1"; shift
  # The CUDA toolkit's usual home, so CMake finds nvcc (and builds the CUDA backend) when the
  # toolkit is installed but not on PATH.
  if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH="/usr/local/cuda/bin:$PATH"
  fi
  cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}
