#!/usr/bin/env bash
# evaluate measures a saved calibration's threshold on other pairs ("calibrated accuracy"), and
# refuses a calibration made for another model, naming both models.
# Usage: evaluate_calibrated.sh EVALUATE_BINARY MODELS_DIR PHOTO_DIR WORK_DIR
set -euo pipefail
evaluate=$1 models=$2 photos=$3 work=$4
rm -rf "$work" && mkdir -p "$work/models"
# evaluate finds the detector and landmark models beside the backbone.
for m in faceapi_recognition.pt faceapi_tiny_detector.pt faceapi_landmarks68.pt; do ln -s "$models/$m" "$work/models/$m"; done
model=$work/models/faceapi_recognition.pt
printf 'obama.jpg,obama2.jpg,1\nbiden.jpg,biden2.jpg,1\nobama.jpg,biden.jpg,0\nobama2.jpg,biden2.jpg,0\n' > "$work/fit.csv"
printf 'obama.jpg,obama2.jpg,1\nobama.jpg,biden2.jpg,0\nobama2.jpg,biden.jpg,0\n' > "$work/test.csv"
"$evaluate" --model "$model" --pairs "$work/fit.csv" --root "$photos" --out "$work" --calibrate accuracy > "$work/fit.txt"
[ -f "$model.calibration.json" ]
"$evaluate" --model "$model" --pairs "$work/test.csv" --root "$photos" --out "$work" > "$work/test.txt"
grep -E "^calibrated +accuracy 1\.0+ at distance [0-9.]+ \(best-accuracy on 4 other pairs" "$work/test.txt"
sed -i 's/"model_name": "[^"]*"/"model_name": "another-model"/' "$model.calibration.json"
if "$evaluate" --model "$model" --pairs "$work/test.csv" --root "$photos" --out "$work" > "$work/refused.txt" 2>&1; then
  echo "evaluate used a calibration made for another model" >&2
  exit 1
fi
grep "was made for model 'another-model', not '" "$work/refused.txt"
