#!/usr/bin/env bash
# Fetches and converts the models into models/ (git-ignored), where the examples look first:
#   models/faceapi_recognition.pt  the face-trained default (dlib ResNet via @vladmandic/face-api)
#   models/faceapi_landmarks68.pt   68-point face landmarks (same package)
#   models/faceapi_tiny_detector.pt tiny face detector (same package)
#   models/faceapi_recognition.pt.open-set.json its open-set calibration, copied from calibration/
#   models/inception_v3.pt         InceptionV3 at 299x299, pretrained: the Keras InceptionV3 of
#                                  nsfwjs@4.4.0 (ImageNet through mixed5, mixed6 onward
#                                  fine-tuned as a 5-class image classifier; not a face model),
#                                  cut at the 2048-d pooled features
#   models/inception_v3_classifier.pt the same network with its 5-class head (golden check)
#   SIAMESE_INCEPTION_WEIGHTS=PATH exports torchvision's InceptionV3 with those ImageNet
#   weights instead (tools/export_inception_v3.py).
# Re-running does nothing when the models are present (face-api's: made by the converter as it
# is now, which models/.faceapi-converter records). The npm packages are cached in .cache/npm
# and checked against their SHA-256 before use.
set -euo pipefail
cd "$(dirname "$0")/.."

package=@vladmandic/face-api
version=1.7.15
tarball=vladmandic-face-api-${version}.tgz
sha256=0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031
cache=.cache/npm
python=/usr/bin/python3
mkdir -p models "$cache"
# Progress: each step says what it does and, when done, how long it took.
step() { echo "setup-models: [$1/5] $2 (${SECONDS} s so far)"; }

# fetch PACKAGE VERSION TARBALL SHA256 STEP: the package's tarball in $cache, checked.
fetch() {
  if [ ! -f "$cache/$3" ]; then
    step "$5" "fetching $1@$2 with npm pack"
    if ! (cd "$cache" && npm pack --silent "$1@$2" >/dev/null); then
      echo "setup-models: cannot fetch $1@$2 from the npm registry." >&2
      echo "  Offline? Put $3 (sha256 $4) into $cache/ and run again." >&2
      exit 1
    fi
  fi
  echo "$4  $cache/$3" | sha256sum --check --quiet - || {
    echo "setup-models: $cache/$3 does not match sha256 $4; delete it and run again" >&2
    exit 1
  }
}

faceapi_models=(faceapi_recognition.pt faceapi_landmarks68.pt faceapi_tiny_detector.pt)
# The converter's own hash: a faster or corrected conversion replaces models made by an older one.
converter=$(cat tools/convert_faceapi.py tools/tfjs_weights.py tools/siamese_metadata.py | sha256sum | cut -d' ' -f1)
missing=0
for m in "${faceapi_models[@]}"; do [ -f "models/$m" ] || missing=1; done
if ((!missing)) && [ "$(cat models/.faceapi-converter 2>/dev/null)" != "$converter" ]; then
  echo "setup-models: face-api's models were made by another version of tools/convert_faceapi.py: converting again"
  missing=1
fi
if ((missing)); then
  fetch "$package" "$version" "$tarball" "$sha256" 1
  step 2 "unpacking and checking $tarball (sha256 matched)"
  unpacked=.cache/faceapi-$version
  rm -rf "$unpacked" && mkdir -p "$unpacked"
  tar -xzf "$cache/$tarball" -C "$unpacked" --strip-components=1 package/model package/package.json
  staging=models/.faceapi-staging
  rm -rf "$staging" && mkdir -p "$staging"
  step 3 "converting face-api's recognition, landmark and detector networks to TorchScript"
  $python tools/convert_faceapi.py "$unpacked" "$staging"
  for m in "${faceapi_models[@]}"; do mv "$staging/$m" "models/$m"; done
  rmdir "$staging"
  echo "$converter" > models/.faceapi-converter
fi
# The default model's open-set calibration (tools/make-open-set-calibration.sh), committed: the
# gallery reads its thresholds for 1:N identification from beside the model.
cmp -s calibration/faceapi_recognition.pt.open-set.json models/faceapi_recognition.pt.open-set.json ||
  cp calibration/faceapi_recognition.pt.open-set.json models/faceapi_recognition.pt.open-set.json

if [ -n "${SIAMESE_INCEPTION_WEIGHTS:-}" ] && [ ! -f models/inception_v3.pt ]; then
  step 4 "exporting torchvision's InceptionV3 with $SIAMESE_INCEPTION_WEIGHTS to TorchScript"
  $python tools/export_inception_v3.py models/inception_v3.pt.tmp --weights "$SIAMESE_INCEPTION_WEIGHTS" 2>&1 | grep -v "UserWarning\|warnings.warn" || true
  [ -s models/inception_v3.pt.tmp ] || { echo "setup-models: InceptionV3 export failed" >&2; exit 1; }
  mv models/inception_v3.pt.tmp models/inception_v3.pt
fi
if [ ! -f models/inception_v3.pt ] || [ ! -f models/inception_v3_classifier.pt ]; then
  nsfw_version=4.4.0
  nsfw_tarball=nsfwjs-$nsfw_version.tgz
  nsfw_sha256=585cd178f3b994337c4d10a87b080d342fc52f8b9bf0085c4d1f345a3a1c5382
  fetch nsfwjs "$nsfw_version" "$nsfw_tarball" "$nsfw_sha256" 4
  step 5 "converting nsfwjs's Keras InceptionV3 (TF.js layers) to TorchScript"
  unpacked=.cache/nsfwjs-$nsfw_version
  rm -rf "$unpacked" && mkdir -p "$unpacked"
  tar -xzf "$cache/$nsfw_tarball" -C "$unpacked" --strip-components=1 package/dist/models/inception_v3 package/dist/models/package.json
  node tools/nsfwjs_unpack.mjs "$unpacked" "$unpacked/layers" >/dev/null
  source="npm nsfwjs@$nsfw_version dist/models/inception_v3 (tarball sha256 $nsfw_sha256): Keras 2.2.4 InceptionV3, ImageNet weights through mixed5, mixed6 onward fine-tuned as a 5-class image classifier; uint8-quantised; not a face model"
  $python tools/convert_keras_tfjs.py "$unpacked/layers/model.json" models/inception_v3_classifier.pt.tmp 2>&1 | grep -v "UserWarning\|warnings.warn"
  [ -f models/inception_v3.pt ] || $python tools/convert_keras_tfjs.py "$unpacked/layers/model.json" models/inception_v3.pt.tmp \
    --output mixed10 --global-pool --name inception_v3-nsfwjs --weights "$source" --license "MIT (nsfwjs)" 2>&1 | grep -v "UserWarning\|warnings.warn"
  mv models/inception_v3_classifier.pt.tmp models/inception_v3_classifier.pt
  [ -f models/inception_v3.pt ] || mv models/inception_v3.pt.tmp models/inception_v3.pt
fi
echo "setup-models: models/ is ready after ${SECONDS} s: $(ls models | tr '\n' ' ')"
