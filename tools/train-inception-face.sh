#!/usr/bin/env bash
# Makes nsfwjs's pretrained InceptionV3 (converted by tools/setup-models.sh) into a face
# verifier and measures each stage on LFW View 1's test pairs (pairsDevTest.txt) with the head
# and threshold fitted on its training pairs (pairsDevTrain.txt; no person is in both):
#   face     the face model itself, the ceiling
#   a        frozen InceptionV3 at 299 on aligned chips, Euclidean distance, sigmoid head and
#            threshold fitted on the training pairs (evaluate --calibrate accuracy)
#   c        distillation: the face model teaches InceptionV3 at 160; the stem (through mixed7,
#            ImageNet and nsfwjs weights) frozen and computed once per chip, mixed8-mixed10 and a
#            new 2048->128 projection trained (examples/distill)
#   control  the same distillation from random weights (convert_keras_tfjs.py --random-init),
#            shortened: CONTROL_EPOCHS epochs without mirror images (as many samples as one
#            epoch of c sees), since the point is the gap pretraining makes
# Training uses every LFW person who is not in pairsDevTest.txt. It takes hours on 2 cores;
# each training resumes from OUT/<stage>/ when the script runs again, and a finished one is
# not repeated. Logs: OUT/<stage>.log; evaluation output: OUT/<stage>-{train,test}.txt.
# Usage: tools/train-inception-face.sh [BUILD_DIR (build)] [LFW_DIR (../shared/lfw)]
#                                      [OUT (BUILD_DIR/inception-face)] [EPOCHS (8)] [CONTROL_EPOCHS (2)]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
lfw=$(realpath "${2:-../shared/lfw}")
out=${3:-$build/inception-face}
epochs=${4:-8}
control_epochs=${5:-2}
cmake --build "$build" --target distill evaluate -j"$(nproc)"
bash tools/setup-models.sh
mkdir -p "$out/models"
out=$(realpath "$out")

# The Keras model as TF.js layers (setup-models.sh unpacks it the same way).
layers=.cache/nsfwjs-4.4.0/layers
if [ ! -f "$layers/model.json" ]; then
  tarball=.cache/npm/nsfwjs-4.4.0.tgz
  [ -f "$tarball" ] || { echo "train-inception-face: $tarball is missing; delete models/inception_v3*.pt and run tools/setup-models.sh" >&2; exit 1; }
  tar -xzf "$tarball" -C .cache/nsfwjs-4.4.0 --strip-components=1 package/dist/models/inception_v3 package/dist/models/package.json
  node tools/nsfwjs_unpack.mjs .cache/nsfwjs-4.4.0 "$layers" >/dev/null
fi
# evaluate and distill use the detector and landmark models beside the backbone they get.
for m in faceapi_tiny_detector.pt faceapi_landmarks68.pt faceapi_recognition.pt; do
  ln -sfn "$PWD/models/$m" "$out/models/$m"
done
source="npm nsfwjs@4.4.0 dist/models/inception_v3: Keras 2.2.4 InceptionV3, ImageNet weights through mixed5, mixed6 onward fine-tuned as a 5-class image classifier; not a face model"
student() {  # NAME [--random-init]: InceptionV3 at 160 as top(stem(x)), the stem ending at mixed7
  [ -f "$out/models/$1.pt" ] || PYTHONWARNINGS=ignore /usr/bin/python3 tools/convert_keras_tfjs.py "$layers/model.json" \
    "$out/models/$1.pt" --output mixed10 --global-pool --split mixed7 --size 160 --name "$1" \
    --weights "$source" --license "MIT (nsfwjs)" "${@:2}"
}
distill() {  # STAGE STUDENT EPOCHS [OPTIONS]
  "$build/examples/distill" --student "$out/models/$2.pt" --teacher "$out/models/faceapi_recognition.pt" \
    --people "$lfw" --exclude "$lfw/pairsDevTest.txt" --out "$out/$1" --epochs "$3" --decay-every 3 \
    --name "inception_v3-face-$1" "${@:4}" >> "$out/$1.log" 2>&1
}
evaluate_stage() {  # STAGE MODEL: head and threshold from the training pairs, accuracy on the test pairs
  ln -sfn "$(realpath "$2")" "$out/models/$1.pt"
  rm -f "$out/models/$1.pt.calibration.json"
  "$build/examples/evaluate" --model "$out/models/$1.pt" --pairs "$lfw/pairsDevTrain.txt" --root "$lfw" \
    --out "$out/$1-train" --calibrate accuracy > "$out/$1-train.txt" 2>/dev/null
  "$build/examples/evaluate" --model "$out/models/$1.pt" --pairs "$lfw/pairsDevTest.txt" --root "$lfw" \
    --out "$out/$1-test" > "$out/$1-test.txt" 2>/dev/null
  printf '%-8s test accuracy %s, AUC %s, EER %s (threshold %s from the training pairs)\n' "$1" \
    "$(awk '/^calibrated/ {print $3}' "$out/$1-test.txt")" "$(awk '/^ROC AUC/ {print $3}' "$out/$1-test.txt")" \
    "$(awk '/^EER/ {print $2}' "$out/$1-test.txt")" "$(awk '/^calibrated/ {print $6}' "$out/$1-test.txt")"
}

student inception_v3-nsfwjs-160
student inception_v3-random-160 --random-init
echo "== distillation (log: $out/c.log) =="
distill c inception_v3-nsfwjs-160 "$epochs"
grep -E "^(epoch|best|data|[0-9.]+ s per epoch)" "$out/c.log" | tail -n "$((epochs + 3))"
echo "== control: the same from random weights, $control_epochs epochs (log: $out/control.log) =="
distill control inception_v3-random-160 "$control_epochs" --no-mirror
grep -E "^(epoch|best|[0-9.]+ s per epoch)" "$out/control.log" | tail -n "$((control_epochs + 2))"
echo "== LFW View 1 test pairs (pairsDevTest.txt, 1,000 pairs) =="
evaluate_stage face "$out/models/faceapi_recognition.pt"
evaluate_stage a models/inception_v3.pt
evaluate_stage c "$out/c/best.pt"
evaluate_stage control "$out/control/best.pt"
