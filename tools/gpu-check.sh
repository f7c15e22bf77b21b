#!/usr/bin/env bash
# The GPU check: builds tests/gpu (siamese::core alone, no OpenCV) against the LibTorch this
# machine has, checks the library on CUDA against the CPU, then measures embed() throughput
# beside Python torch running the same TorchScript files, taking turns. Without CUDA it runs
# the CPU half, says that CUDA is absent, and exits 0 when the CPU half passes (CI runs it so).
#
#   tools/gpu-check.sh [--pack ARCHIVE] [--models DIR]
#   tools/gpu-check.sh pack [ARCHIVE]   (on a machine with the models) writes ARCHIVE, default
#                                       .cache/gpu-check.tar: both models stored in float16 (the
#                                       64 MiB a lent machine takes) and nlohmann/json.hpp
#
# Needs: cmake, g++, a Python with torch (PYTHON, else python3, else /usr/bin/python3). The
# LibTorch is that torch's (torch.utils.cmake_prefix_path) when it ships one, else LIBTORCH
# (an unpacked official archive), else the system's (Debian's libtorch-dev). Models: --models,
# else the unpacked --pack, else models/ (tools/setup-models.sh). Report: $OUT/gpu-check.md when
# OUT is set, else build-gpu-check/gpu-check.md.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" -c 'import torch' 2>/dev/null || python=/usr/bin/python3

if [ "${1:-}" = "pack" ]; then
  archive=${2:-.cache/gpu-check.tar}
  staging=.cache/gpu-check-pack
  rm -rf "$staging" && mkdir -p "$staging/models" "$staging/include/nlohmann"
  "$python" - "$staging/models" <<'PY'
import sys, torch
for name in ("faceapi_recognition.pt", "inception_v3.pt"):
    extra = {"siamese.json": ""}
    module = torch.jit.load("models/" + name, map_location="cpu", _extra_files=extra)
    torch.jit.save(module.half(), f"{sys.argv[1]}/{name}.f16", _extra_files=extra)
PY
  cp /usr/include/nlohmann/json.hpp "$staging/include/nlohmann/"
  tar -cf "$archive" -C "$staging" .
  echo "gpu-check: packed $(du -k "$archive" | cut -f1) KiB into $archive (carry it; run tools/gpu-check.sh --pack $archive there)"
  exit 0
fi

models=models
pack=""
while (($#)); do
  case "$1" in
    --pack) pack=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    *) echo "usage: tools/gpu-check.sh [--pack ARCHIVE] [--models DIR] | tools/gpu-check.sh pack [ARCHIVE]" >&2; exit 2 ;;
  esac
done

build=build-gpu-check
mkdir -p "$build"
report=${OUT:-$build}/gpu-check.md
cmake_args=(-DCMAKE_BUILD_TYPE=Release)
if [ -n "$pack" ]; then
  unpacked=$build/pack
  rm -rf "$unpacked" && mkdir -p "$unpacked/models"
  tar -xf "$pack" -C "$unpacked"
  "$python" - "$unpacked/models" <<'PY'
import glob, os, sys, torch
for packed in glob.glob(sys.argv[1] + "/*.f16"):
    extra = {"siamese.json": ""}
    module = torch.jit.load(packed, map_location="cpu", _extra_files=extra)
    torch.jit.save(module.float(), packed[:-4], _extra_files=extra)
    os.remove(packed)
PY
  models=$unpacked/models
  cmake_args+=(-DSIAMESE_JSON_INCLUDE_DIR="$PWD/$unpacked/include")
fi

prefix=$("$python" -c 'import os, torch; p = torch.utils.cmake_prefix_path; print(p if os.path.exists(os.path.join(p, "Torch", "TorchConfig.cmake")) else "")')
if [ -n "$prefix" ]; then
  libtorch="$prefix (Python torch $("$python" -c 'import torch; print(torch.__version__)'))"
elif [ -n "${LIBTORCH:-}" ]; then
  prefix=$LIBTORCH
  libtorch="$LIBTORCH (LIBTORCH)"
else
  libtorch="the system's (Debian's libtorch-dev)"
fi
[ -n "$prefix" ] && cmake_args+=(-DCMAKE_PREFIX_PATH="$prefix")
echo "gpu-check: building tests/gpu against $libtorch"
cmake -S tests/gpu -B "$build" "${cmake_args[@]}" >"$build/configure.log" || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" >"$build/build.log" 2>&1 || { tail -50 "$build/build.log"; exit 1; }

{
  echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "- LibTorch: $libtorch"
  echo "- Python torch: $("$python" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')"
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"
  fi
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
  echo
  echo '```'
} >"$report"
status=0
"$build/gpu_check" checks "$models" "$build/work" | tee -a "$report" || status=$?
echo '```' >>"$report"

cuda=$("$python" -c 'import torch; print(int(torch.cuda.is_available()))')
if ((cuda)); then
  batches=1,32,256 precisions=float32,float16,bfloat16 seconds=2 rounds=2
else
  batches=1,8 precisions=float32 seconds=1 rounds=1  # keeps the path from rotting; not a target
fi
for ((round = 1; round <= rounds; ++round)); do  # taking turns: library, then Python, per round
  "$build/gpu_check" throughput "$models" $batches $precisions $seconds >>"$build/library.csv.$round"
  "$python" tools/gpu_throughput.py "$models" $batches $precisions $seconds >>"$build/python.csv.$round"
done
"$python" - "$build" "$rounds" >>"$report" <<'PY'
import collections, sys
build, rounds = sys.argv[1], int(sys.argv[2])
best = {"library": collections.defaultdict(float), "python": collections.defaultdict(float)}
for side in best:
    for r in range(1, rounds + 1):
        for line in open(f"{build}/{side}.csv.{r}"):
            model, precision, batch, rate = line.strip().split(",")
            key = (model, precision, int(batch))
            best[side][key] = max(best[side][key], float(rate))
print("\n| model | precision | batch | library images/s | Python torch images/s | library / Python |")
print("|---|---|---:|---:|---:|---:|")
for key in sorted(best["library"]):
    lib, py = best["library"][key], best["python"].get(key, 0.0)
    print(f"| {key[0]} | {key[1]} | {key[2]} | {lib:.1f} | {py:.1f} | {lib / py if py else float('nan'):.2f} |")
print(f"\nBest of {rounds} round(s) per side, each row measured for the same time, library and Python taking turns.")
PY
rm -f "$build"/library.csv.* "$build"/python.csv.*
cat "$report" | tail -25
echo "gpu-check: report in $report"
exit "$status"
