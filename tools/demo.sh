#!/usr/bin/env bash
# The README's main job: installs dependencies, fetches and converts the face model, builds
# verify_pair, and verifies the sample photos (a same-person pair and a different-person pair).
# Usage: tools/demo.sh [IMAGE_A IMAGE_B]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
bash tools/setup-models.sh
# Only verify_pair is built; the cache's test and example switches are left as they are, so
# tools/run-tests.sh after this builds and runs every test.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target verify_pair
model=models/faceapi_recognition.pt
if (($# == 2)); then
  build/examples/verify_pair "$model" "$1" "$2"
else
  for pair in "obama.jpg obama2.jpg" "obama.jpg biden.jpg"; do
    set -- $pair
    echo "== examples/data/$1 vs examples/data/$2"
    build/examples/verify_pair "$model" "examples/data/$1" "examples/data/$2"
  done
fi
