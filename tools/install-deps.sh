#!/usr/bin/env bash
# Installs everything the library, its tests, examples and model tools need, from Debian 12's
# packages. Safe to re-run: apt-get skips what is already there.
set -euo pipefail
packages=(
  cmake g++ make                       # build
  libtorch-dev libopencv-dev           # the library's dependencies
  nlohmann-json3-dev catch2            # metadata JSON, tests
  libsqlite3-dev                       # gallery databases
  libpq-dev                            # galleries on a PostgreSQL server
  postgresql-15                        # its tests start a server of their own
  libcli11-dev                         # the examples' command lines
  libfaiss-dev                         # optional FAISS gallery index (siamese::faiss)
  libopenblas0-openmp                  # fast BLAS for LibTorch (the reference BLAS is slow)
  python3-torch python3-torchvision    # tools/: model export and conversion
  python3-pil                          # tools/distill_gpu.py: reading exported chips
  opencv-data                          # Haar cascades
  clang libclang-rt-14-dev             # fuzzers: libFuzzer with ASan/UBSan (tools/run-fuzzers.sh)
  ca-certificates
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches the face-api package (tools/setup-models.sh). Some machines carry their own
# Node.js build, whose npm would conflict with Debian's: install Debian's only when none exists.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
