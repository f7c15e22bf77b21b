#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, and runs the whole test suite.
# Usage: tools/run-tests.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bash tools/install-deps.sh
# Tests and examples are switched on whatever the cache holds: tools/demo.sh may have
# configured the same folder first.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSIAMESE_BUILD_TESTS=ON -DSIAMESE_BUILD_EXAMPLES=ON
cmake --build "$build" -j"$(nproc)"
# A run that finds no test is a failure, never a pass.
ctest --test-dir "$build" --output-on-failure --no-tests=error -j"$(nproc)"
