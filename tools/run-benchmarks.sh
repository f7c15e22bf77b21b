#!/usr/bin/env bash
# The README's benchmark command: builds the benchmarks, prepares the models (the face model
# from tools/setup-models.sh; InceptionV3 at 299 and 224, random weights, exported once into
# BUILD_DIR/bench-models), then prints, in one run:
#   1. embedding throughput, library vs Python (same TorchScript files, same threads, taking
#      turns on the machine) and vs peak
#   2. the end-to-end pipeline on LFW pairs (../shared/lfw, else the sample photos): stages,
#      photos/s with and without the preparing thread, and peak memory over a synthetic folder
#      of 100,000 photos (2,000 with --quick; the full size takes about 40 minutes on 2 cores)
#   2b. face-api.js itself (npm, WebAssembly backend in Node) against the library on the same
#      200 photos, at one thread and at all (skipped, saying why, without npm or the registry)
#   3. gallery search, exact and FAISS, 10k to 1M embeddings
#   4. gallery databases: one enrollment vs rewriting the single file, 10k to 1M embeddings
#   5. faces at other angles: photos against turned copies of themselves, with the rotation
#      search and without (40 LFW people; the sample photos without ../shared/lfw)
#   6. faces in video: frames/s of tracking and identifying up to 3 faces in a 640x480 video,
#      detection every 1, 2 and 3 frames, with tracks, switches and names (needs ../shared/lfw)
#   7. face quality: LFW View 2 verification errors by quality decile, and the accuracy with
#      the lowest-quality pairs rejected (needs ../shared/lfw)
# Usage: tools/run-benchmarks.sh [BUILD_DIR (build)] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
quick=${2:-}
bash tools/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target embed_throughput pipeline_breakdown gallery_search gallery_store rotation_probe video_tracking quality_deciles -j"$(nproc)"
bash tools/setup-models.sh
threads=$(nproc)
models="$build/bench-models"
mkdir -p "$models"
for side in 299 224; do
  [ -f "$models/inception_v3-$side.pt" ] || PYTHONWARNINGS=ignore /usr/bin/python3 tools/export_inception_v3.py \
    "$models/inception_v3-$side.pt" --size "$side" --random-init >/dev/null
done
seconds=4; batches=1,8,32; sizes=10000,100000,1000000; synthetic=100000
if [ "$quick" = "--quick" ]; then seconds=1; batches=1,8; sizes=10000; synthetic=2000; fi
bench_models=("$models/inception_v3-299.pt" "$models/inception_v3-224.pt" models/faceapi_recognition.pt)

echo "== 1. embedding throughput ($threads threads) =="
args=()
for m in "${bench_models[@]}"; do args+=(--model "$m"); done
"$build/benchmarks/embed_throughput" "${args[@]}" --threads "$threads" --batches "$batches" --seconds "$seconds" \
  --python "PYTHONWARNINGS=ignore /usr/bin/python3 benchmarks/python_baseline.py --threads $threads"

echo; echo "== 2. end to end =="
if [ -f ../shared/lfw/pairsDevTest.txt ]; then
  photos=(--pairs ../shared/lfw/pairsDevTest.txt --root ../shared/lfw)
else
  printf 'path_a,path_b,label\nobama.jpg,obama2.jpg,1\nbiden.jpg,biden2.jpg,1\nobama.jpg,biden.jpg,0\n' > "$build/sample-pairs.csv"
  photos=(--pairs "$build/sample-pairs.csv" --root examples/data)
fi
"$build/benchmarks/pipeline_breakdown" --models models "${photos[@]}" --max-photos 600 --mirror
"$build/benchmarks/pipeline_breakdown" --models models "${photos[@]}" --synthetic "$synthetic" --mirror

echo; echo "== 2b. face-api.js (the JavaScript original) on the same photos =="
peer="$build/faceapi-peer"
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "skipped: node and npm are not installed (apt-get install nodejs npm)"
elif ! [ -d "$peer/node_modules/jpeg-js" ] && ! (mkdir -p "$peer" && cd "$peer" && npm install --no-audit --no-fund --silent \
    @vladmandic/face-api@1.7.15 @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0 jpeg-js@0.4.4 >/dev/null 2>&1); then
  echo "skipped: npm could not fetch face-api.js and TensorFlow.js (offline?)"
else
  if [ -f ../shared/lfw/pairsDevTest.txt ]; then  # the first 200 distinct photos of View 1's test pairs
    awk -F'\t' 'NR > 1 { if (NF == 3) print $1 "/" $1 "_" sprintf("%04d", $2) ".jpg\n" $1 "/" $1 "_" sprintf("%04d", $3) ".jpg";
                          else print $1 "/" $1 "_" sprintf("%04d", $2) ".jpg\n" $3 "/" $3 "_" sprintf("%04d", $4) ".jpg" }' \
      ../shared/lfw/pairsDevTest.txt | awk '!seen[$0]++' | head -200 | sed "s|^|$PWD/../shared/lfw/|" > "$build/peer-photos.txt"
  else
    ls "$PWD"/examples/data/*.jpg > "$build/peer-photos.txt"
  fi
  node benchmarks/faceapi_peer.mjs "$peer/node_modules" "$build/peer-photos.txt" --input-size 256 > "$build/faceapi-peer.tsv"
  "$build/benchmarks/pipeline_breakdown" --models models --photo-list "$build/peer-photos.txt" --detector-sizes 256 \
    --peer "$build/faceapi-peer.tsv"
fi

echo; echo "== 3. gallery search =="
"$build/benchmarks/gallery_search" --sizes "$sizes" --dims 128,2048 --probes 1000 --probe-cells 16,64,128

echo; echo "== 4. gallery databases: SQLite and PostgreSQL side by side =="
# A scratch PostgreSQL server (tools/scratch-postgres.sh) for the server engine; SQLite alone
# where PostgreSQL 15 is not installed.
pg_dir=$(mktemp -d)
if bash tools/scratch-postgres.sh start "$pg_dir" durable; then
  socket=$(printf %s "$pg_dir" | sed 's|/|%2F|g')
  "$build/benchmarks/gallery_store" --sizes "$sizes" --url "postgresql://postgres@$socket:5432/gallery"
  bash tools/scratch-postgres.sh stop "$pg_dir"
else
  echo "(no PostgreSQL server: SQLite alone)"
  "$build/benchmarks/gallery_store" --sizes "$sizes"
fi
rm -rf "$pg_dir"

echo; echo "== 5. faces at other angles =="
if [ -d ../shared/lfw ]; then
  "$build/benchmarks/rotation_probe" --models models --people ../shared/lfw --photos 40
else
  mkdir -p "$build/sample-people/obama" "$build/sample-people/biden"
  cp examples/data/obama.jpg "$build/sample-people/obama/" && cp examples/data/biden.jpg "$build/sample-people/biden/"
  "$build/benchmarks/rotation_probe" --models models --people "$build/sample-people" --photos 2
fi

echo; echo "== 6. faces in video: tracking, detection every 1, 2 and 3 frames =="
if [ -d ../shared/lfw ]; then
  "$build/benchmarks/video_tracking" --models models --photos examples/data --lfw ../shared/lfw
  echo; echo "== 7. face quality: verification errors by quality decile, LFW View 2 =="
  "$build/benchmarks/quality_deciles" --models models --pairs ../shared/lfw/pairs.txt --root ../shared/lfw
else
  echo "video_tracking and quality_deciles need ../shared/lfw (a third person; LFW View 2): skipped"
fi
