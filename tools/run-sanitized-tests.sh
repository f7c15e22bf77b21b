#!/usr/bin/env bash
# The unit tests built with AddressSanitizer + UndefinedBehaviorSanitizer (GCC), run once in
# one process. Any report fails the run: UBSan halts on the first error; LeakSanitizer checks
# at exit, with LibTorch's and OpenCV's process-lifetime allocations suppressed
# (tests/sanitizers/lsan.supp says which, and why).
# Usage: tools/run-sanitized-tests.sh [BUILD_DIR (build-asan)]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-asan}
bash tools/install-deps.sh
# -O1 -g1: line numbers in reports, for less compile time than -O2 -g.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_FLAGS="-O1 -g1" -DSIAMESE_SANITIZE=ON -DSIAMESE_BUILD_EXAMPLES=OFF \
  -DSIAMESE_BUILD_BENCHMARKS=OFF -DSIAMESE_INSTALL=OFF >/dev/null
cmake --build "$build" --target siamese_tests -j"$(nproc)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
export LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
"$build/tests/siamese_tests" "~[models]" --durations no --warn NoTests
