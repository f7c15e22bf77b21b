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
# Needs: cmake, g++, a Python with torch (PYTHON, else python3, else /usr/bin/python3), whose
# LibTorch it builds against (see "Which LibTorch" below; LIBTORCH=DIR: an unpacked official
# archive). Models: --models,
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
unpacked=""
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

# Which LibTorch: the Python torch's CMake package when it ships one; else LIBTORCH; else the
# Python torch's files as they lie (a wheel's, or Debian's python3-torch, which ships no CMake
# files); else the system's. A CUDA wheel's CMake package looks for the CUDA toolkit: where that
# fails, its files are taken as they lie too.
torch_dir=$("$python" -c 'import torch; print(torch.__path__[0])')
torch_abi=$("$python" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
torch_version=$("$python" -c 'import torch; print(torch.__version__)')
prefix=$("$python" -c 'import os, torch; p = torch.utils.cmake_prefix_path; print(p if os.path.exists(os.path.join(p, "Torch", "TorchConfig.cmake")) else "")')
wheel_args=(-DSIAMESE_TORCH_WHEEL_DIR="$torch_dir" -DSIAMESE_TORCH_CXX11_ABI="$torch_abi")
if [ -n "$prefix" ]; then
  libtorch="Python torch $torch_version's CMake package ($prefix)"
  cmake_args+=(-DCMAKE_PREFIX_PATH="$prefix")
elif [ -n "${LIBTORCH:-}" ]; then
  libtorch="$LIBTORCH (LIBTORCH)"
  cmake_args+=(-DCMAKE_PREFIX_PATH="$LIBTORCH")
elif [ -f "$torch_dir/lib/libtorch.so" ] && [ -d "$torch_dir/include/torch" ]; then
  libtorch="Python torch $torch_version's files as they lie ($torch_dir, C++11 ABI $torch_abi)"
  cmake_args+=("${wheel_args[@]}")
else
  libtorch="the system's (Debian's libtorch-dev)"
fi
echo "gpu-check: building tests/gpu against $libtorch"
rm -f "$build/CMakeCache.txt"  # the LibTorch chosen now, not one a cache remembers
if ! cmake -S tests/gpu -B "$build" "${cmake_args[@]}" >"$build/configure.log" 2>&1; then
  if [ -z "$prefix" ]; then cat "$build/configure.log"; exit 1; fi
  echo "gpu-check: its CMake package failed to configure (a CUDA wheel's needs the CUDA toolkit): taking its files as" \
       "they lie instead. The error, from $build/configure.log:"
  grep -A3 -m2 "CMake Error" "$build/configure.log" || tail -5 "$build/configure.log"
  libtorch="Python torch $torch_version's files as they lie ($torch_dir, C++11 ABI $torch_abi; its CMake package failed)"
  rm -f "$build/CMakeCache.txt"
  cmake -S tests/gpu -B "$build" -DCMAKE_BUILD_TYPE=Release "${wheel_args[@]}" \
    ${unpacked:+-DSIAMESE_JSON_INCLUDE_DIR="$PWD/$unpacked/include"} >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log"; exit 1; }
fi
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
