#!/usr/bin/env bash
# evaluate --precision: a name it does not know is a bad argument (exit 2); float16 is refused
# off CUDA (exit 1, naming the device); bfloat16 runs where the CPU computes it (AVX512-BF16 or
# AMX) and separates the sample pairs, and is refused by name elsewhere.
# Usage: evaluate_precision.sh EVALUATE_BINARY MODELS_DIR PHOTO_DIR WORK_DIR
set -uo pipefail
evaluate=$1 models=$2 photos=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
printf 'obama.jpg,obama2.jpg,1\nbiden.jpg,biden2.jpg,1\nobama.jpg,biden.jpg,0\nobama2.jpg,biden2.jpg,0\n' > "$work/pairs.csv"
run() { "$evaluate" --model "$models/faceapi_recognition.pt" --pairs "$work/pairs.csv" --root "$photos" --out "$work" "$@"; }
# expect CODE PATTERN NAME ARGS...: the run exits with CODE and its output matches PATTERN.
expect() {
  local code=$1 pattern=$2 name=$3; shift 3
  run "$@" > "$work/$name.txt" 2>&1
  local got=$?
  [ "$got" -eq "$code" ] || { echo "$name: exit $got, expected $code"; cat "$work/$name.txt"; exit 1; }
  grep -E "$pattern" "$work/$name.txt" || { echo "$name: no line matches '$pattern'"; cat "$work/$name.txt"; exit 1; }
}
expect 2 "unknown precision 'fp8'" unknown --precision fp8
expect 1 "float16 precision needs a CUDA device" float16 --precision float16
if grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
  expect 0 "backbone in bfloat16" bfloat16 --precision bfloat16
  grep -E "^ROC AUC +1\.0000$" "$work/bfloat16.txt"
else
  expect 1 "bfloat16 precision for .* needs a CUDA device or a CPU with AVX512-BF16" bfloat16 --precision bfloat16
fi
