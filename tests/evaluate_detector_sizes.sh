#!/usr/bin/env bash
# evaluate detects coarse to fine by default and at every input size with --every-detector-size,
# says which, and separates the sample pairs either way.
# Usage: evaluate_detector_sizes.sh EVALUATE_BINARY MODELS_DIR PHOTO_DIR WORK_DIR
set -euo pipefail
evaluate=$1 models=$2 photos=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
printf 'obama.jpg,obama2.jpg,1\nbiden.jpg,biden2.jpg,1\nobama.jpg,biden.jpg,0\nobama2.jpg,biden2.jpg,0\n' > "$work/pairs.csv"
run() { "$evaluate" --model "$models/faceapi_recognition.pt" --pairs "$work/pairs.csv" --root "$photos" --out "$work" "$@"; }
run > "$work/default.txt"
run --every-detector-size > "$work/every.txt"
grep -E "^faces +detected coarse to fine" "$work/default.txt"
grep -E "^faces +detected at every input size, merged" "$work/every.txt"
for report in default every; do grep -E "^ROC AUC +1\.0000$" "$work/$report.txt"; done
