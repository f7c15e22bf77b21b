#!/usr/bin/env bash
# Builds the libFuzzer fuzzers (clang, ASan + UBSan) and runs each for a bounded time, starting
# from the committed seeds in tests/fuzz/corpus/<target>/. New inputs the fuzzer finds go to
# BUILD_DIR/corpus/<target>/, never into the repository. A crash stops the run with the input
# saved under BUILD_DIR/crashes/: fix it, then commit the input to
# tests/fuzz/regressions/<target>/, which the unit tests replay.
# Usage: tools/run-fuzzers.sh [SECONDS_EACH (60)] [BUILD_DIR (build-fuzz)]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=${2:-build-fuzz}
bash tools/install-deps.sh
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSIAMESE_BUILD_FUZZERS=ON -DSIAMESE_BUILD_EXAMPLES=OFF -DSIAMESE_INSTALL=OFF >/dev/null
cmake --build "$build" --target fuzzers -j"$(nproc)"
rm -rf "$build/crashes"; mkdir -p "$build/crashes"  # count only this run's crashes
# LibTorch keeps process-lifetime allocations that LeakSanitizer would report after each input.
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1
printf '%-14s %12s %10s %8s %s\n' target executions exec/s coverage crashes > "$build/fuzz-summary.txt"
status=0
for target in decode_image pair_list gallery gallery_database metadata; do
  mkdir -p "$build/corpus/$target"
  log="$build/fuzz-$target.log"
  set +e
  "$build/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 \
    -timeout=10 -artifact_prefix="$build/crashes/$target-" \
    "$build/corpus/$target" "tests/fuzz/corpus/$target" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  crashes=$(ls "$build/crashes" | grep -c "^$target-" || true)
  printf '%-14s %12s %10s %8s %s\n' "$target" "$runs" "$speed" "$coverage" "$crashes" >> "$build/fuzz-summary.txt"
  if [ "$rc" -ne 0 ]; then
    status=1
    echo "run-fuzzers: fuzz_$target failed (exit $rc); its log:" >&2
    tail -40 "$log" >&2
  fi
done
cat "$build/fuzz-summary.txt"
exit "$status"
