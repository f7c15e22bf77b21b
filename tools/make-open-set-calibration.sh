#!/usr/bin/env bash
# Makes the default model's open-set calibration, calibration/faceapi_recognition.pt.open-set.json,
# which tools/setup-models.sh puts beside the model: LFW's people on the calibration side of the
# split (a seeded hash of each name: --share 0.2 --seed 1, 1,081 people, 2,355 photos), which
# `open_set benchmark` with the same split never enrolls nor searches with. Distance statistics
# only: no image, no embedding, no name. About 40 s on 2 cores.
# Usage: tools/make-open-set-calibration.sh [LFW_ROOT] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
lfw=${1:-../shared/lfw}
build=${2:-build}
"$build/examples/open_set" calibrate --people "$lfw" --model models/faceapi_recognition.pt --share 0.2 --seed 1 \
  --output calibration/faceapi_recognition.pt.open-set.json
