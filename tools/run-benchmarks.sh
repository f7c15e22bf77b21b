#!/usr/bin/env bash
# The README's benchmark command: builds the benchmarks, prepares the models (the face model
# from tools/setup-models.sh; InceptionV3 at 299 and 224, random weights, exported once into
# BUILD_DIR/bench-models), then prints, in one run:
#   1. embedding throughput, library vs Python (same TorchScript files, same threads) and vs peak
#   2. the end-to-end pipeline on LFW pairs (../shared/lfw, else the sample photos)
#   3. gallery search, exact and FAISS, 10k to 1M embeddings
#   4. gallery databases: one enrollment vs rewriting the single file, 10k to 1M embeddings
# Usage: tools/run-benchmarks.sh [BUILD_DIR (build)] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
quick=${2:-}
bash tools/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target embed_throughput pipeline_breakdown gallery_search gallery_store -j"$(nproc)"
bash tools/setup-models.sh
threads=$(nproc)
models="$build/bench-models"
mkdir -p "$models"
for side in 299 224; do
  [ -f "$models/inception_v3-$side.pt" ] || PYTHONWARNINGS=ignore /usr/bin/python3 tools/export_inception_v3.py \
    "$models/inception_v3-$side.pt" --size "$side" --random-init >/dev/null
done
seconds=4; batches=1,8,32; sizes=10000,100000,1000000
if [ "$quick" = "--quick" ]; then seconds=1; batches=1,8; sizes=10000; fi
bench_models=("$models/inception_v3-299.pt" "$models/inception_v3-224.pt" models/faceapi_recognition.pt)

echo "== 1. embedding throughput ($threads threads) =="
PYTHONWARNINGS=ignore /usr/bin/python3 benchmarks/python_baseline.py --threads "$threads" --batches "$batches" \
  --seconds "$seconds" "${bench_models[@]}" > "$build/python-baseline.tsv"
args=()
for m in "${bench_models[@]}"; do args+=(--model "$m"); done
"$build/benchmarks/embed_throughput" "${args[@]}" --threads "$threads" --batches "$batches" --seconds "$seconds" \
  --python "$build/python-baseline.tsv"

echo; echo "== 2. end to end =="
if [ -f ../shared/lfw/pairsDevTest.txt ]; then
  "$build/benchmarks/pipeline_breakdown" --models models --pairs ../shared/lfw/pairsDevTest.txt --root ../shared/lfw --max-pairs 300
else
  printf 'path_a,path_b,label\nobama.jpg,obama2.jpg,1\nbiden.jpg,biden2.jpg,1\nobama.jpg,biden.jpg,0\n' > "$build/sample-pairs.csv"
  "$build/benchmarks/pipeline_breakdown" --models models --pairs "$build/sample-pairs.csv" --root examples/data
fi

echo; echo "== 3. gallery search =="
"$build/benchmarks/gallery_search" --sizes "$sizes" --dims 128,2048 --probes 1000

echo; echo "== 4. gallery databases =="
"$build/benchmarks/gallery_store" --sizes "$sizes"
