#!/usr/bin/env bash
# gpu-check.sh — the device check for the CUDA kernels (docs/cuda.md). On the GPU machine (CUDA 13,
# nvcc, cmake, ninja, NVIDIA's pip wheels; no node) it configures and builds only the CUDA kernel
# library and its test binaries with plain cmake (PARATRAIN_CUDA_ONLY), runs them, writes full logs
# under $OUT (or build-gpu/logs) and prints a short table last. Also runs here, without a GPU: the
# build must succeed and the tests end with "no CUDA device: skipped" (exit 77).
# Exit status: 0 all checks passed; 1 a build step or a check failed; 77 no CUDA device.
set -uo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD_DIR:-build-gpu}
LOGS=${OUT:-$BUILD/logs}
mkdir -p "$LOGS"
die() { echo "gpu-check: $*" >&2; exit 1; }

command -v cmake >/dev/null || die "cmake not found"
NVCC=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[ -x "$NVCC" ] || die "nvcc not found (looked for \$CUDACXX, nvcc on PATH, /usr/local/cuda/bin/nvcc)"
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)

# NVIDIA's libraries as pip wheels: site-packages/nvidia/<lib>/{include,lib}.
NVROOT=${PARATRAIN_NVIDIA_ROOT:-$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null || true)}
EXTRA=()
if [ -n "$NVROOT" ] && [ -d "$NVROOT/nvidia" ]; then
  EXTRA+=("-DPARATRAIN_NVIDIA_ROOT=$NVROOT")
  for d in "$NVROOT"/nvidia/*/lib; do LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; done
  export LD_LIBRARY_PATH
fi

echo "== configure ($BUILD)"
cmake -S . -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$NVCC" \
  -DPARATRAIN_CUDA=ON -DPARATRAIN_CUDA_ONLY=ON "${EXTRA[@]}" >"$LOGS/configure.log" 2>&1 \
  || { tail -30 "$LOGS/configure.log"; die "configure failed (full log: $LOGS/configure.log)"; }
grep -E "CUDA kernels|paratrain:" "$LOGS/configure.log"

echo "== build"
start=$(date +%s)
cmake --build "$BUILD" -j "$(nproc)" >"$LOGS/build.log" 2>&1 \
  || { grep -E "error|Error" "$LOGS/build.log" | head -30; die "build failed (full log: $LOGS/build.log)"; }
echo "built in $(( $(date +%s) - start )) s"

# The kernel tests, then any other CUDA test binary the build made (GEMM, attention, ...).
TESTS=("$BUILD/paratrain_cuda_kernel_tests")
[ -x "${TESTS[0]}" ] || die "paratrain_cuda_kernel_tests was not built"
for t in "$BUILD"/paratrain_cuda_*_tests; do
  [ -x "$t" ] && [ "$t" != "${TESTS[0]}" ] && TESTS+=("$t")
done

status=0; rows=()
for t in "${TESTS[@]}"; do
  name=$(basename "$t")
  echo "== $name"
  timeout 300 "$t" >"$LOGS/$name.log" 2>&1; rc=$?
  grep -E "^(FAIL|device)" "$LOGS/$name.log" | head -40
  tail -1 "$LOGS/$name.log"
  summary=$(grep -E "^[0-9]+ passed, [0-9]+ failed$" "$LOGS/$name.log" | tail -1)
  case $rc in
    0) ;;
    77) [ $status -eq 0 ] && status=77; summary="no CUDA device: skipped" ;;
    124) status=1; summary="timed out after 300 s" ;;
    *) status=1; summary="${summary:-crashed (exit $rc)} (exit $rc)" ;;
  esac
  rows+=("$name|$summary")
done

card=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
echo
echo "| date | card | binary | result |"
echo "|---|---|---|---|"
for r in "${rows[@]}"; do
  echo "| $(date -u +%F) | ${card:-no GPU (nvidia-smi: none)} | ${r%%|*} | ${r#*|} |"
done | tee "$LOGS/summary.md"
exit $status
