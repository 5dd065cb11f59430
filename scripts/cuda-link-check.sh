#!/usr/bin/env bash
# cuda-link-check.sh — builds the CUDA addon (paratrain_cuda.node) on a machine with nvcc but no
# GPU and no cuBLAS libraries, and checks what can be checked there (docs/cuda.md):
#   1. the CUDA engine (cpp/model, cpp/engine, cpp/optim with the CUDA optimizer) and kernels compile
#      (cmake targets paratrain_cuda_engine, paratrain_cuda_kernels);
#   2. gemm_cublaslt.cu compiles against cuBLASLt headers (CUBLAS_INCLUDE, default: what
#      ../shared/device/cublas-headers.sh fetches, CUDA 11.8's);
#   3. the addon links with nothing of ours unresolved: the only undefined symbols left are N-API
#      (node), cuBLASLt (the GPU machine's library), the CUDA runtime, libzmq and the C/C++ runtime;
#   4. node loads it and it refuses cleanly without a GPU (ERR_NO_CUDA_DEVICE), or loads on one.
# Usage: bash scripts/cuda-link-check.sh [CUBLAS_INCLUDE_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "cuda-link-check: $*" >&2; exit 1; }
NVCC=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[ -x "$NVCC" ] || die "nvcc not found (\$CUDACXX, PATH, /usr/local/cuda/bin/nvcc)"
# The toolkit's headers and runtime: $CUDA_HOME, beside nvcc (nvcc may be a wrapper script), or
# /usr/local/cuda; the flat layout or the per-target one.
cuda_inc='' cuda_lib=''
for home in ${CUDA_HOME:-} "$(dirname "$(dirname "$(readlink -f "$NVCC")")")" /usr/local/cuda; do
  for t in "$home" "$home"/targets/*-linux; do
    if [ -z "$cuda_inc" ] && [ -f "$t/include/cuda_runtime_api.h" ]; then
      cuda_inc=$t/include
      cuda_lib=$t/lib64
      [ -d "$cuda_lib" ] || cuda_lib=$t/lib
    fi
  done
done
[ -n "$cuda_inc" ] || die "cuda_runtime_api.h not found (set CUDA_HOME)"
inc=${1:-${CUBLAS_INCLUDE:-/tmp/cublas-include}}
if [ ! -f "$inc/cublasLt.h" ]; then
  fetch=../shared/device/cublas-headers.sh
  [ -x "$fetch" ] || [ -f "$fetch" ] || die "no cublasLt.h in $inc; pass a folder with cuBLASLt headers"
  inc=$(bash "$fetch" "$inc")
fi
[ -d build-cmake ] || die "build-cmake/ is missing: run npm run build:native first"
cmake --build build-cmake --target paratrain_cuda_engine paratrain_cuda_kernels -j2
out=build-cmake/cuda-link-check
mkdir -p "$out"
"$NVCC" -std=c++17 -O2 -arch=sm_90 -Xcompiler -fPIC -I"$inc" -Icpp -c cpp/kernels/cuda/gemm_cublaslt.cu -o "$out/gemm.o"
node_inc=$(sed -n 's/^CMAKE_JS_INC:[A-Z]*=//p' build-cmake/CMakeCache.txt)
[ -f "$node_inc/node_api.h" ] || node_inc=/usr/include/node
g++ -std=c++17 -O2 -fPIC -DPARATRAIN_BACKEND_CUDA -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -I"$cuda_inc" \
  -I"$node_inc" -Inode_modules/node-addon-api -c cpp/napi/addon.cpp -o "$out/addon.o"
g++ -shared -o "$out/paratrain_cuda.node" "$out/addon.o" "$out/gemm.o" \
  -Wl,--whole-archive build-cmake/libparatrain_cuda_engine.a -Wl,--no-whole-archive \
  build-cmake/libparatrain_cuda_kernels.a -L"$cuda_lib" -lcudart -lzmq -lpthread
# Everything undefined must come from node, cuBLASLt, the CUDA runtime, libzmq or the C/C++ runtime.
left=$(nm -u "$out/paratrain_cuda.node" | awk '{print $2}' |
  grep -Ev '^(napi_|node_api_|cublasLt|zmq_|__cuda|cuda|_ITM_|__gmon_start__)|@(GLIBC|GLIBCXX|CXXABI|GCC|libcudart)' || true)
[ -z "$left" ] || die "unresolved symbols of our own in the CUDA addon:
$left"
echo "linked: $out/paratrain_cuda.node ($(nm -u "$out/paratrain_cuda.node" | grep -c cublasLt) cuBLASLt symbols from the GPU machine's library)"
node -e "
try { const a = require('./$out/paratrain_cuda.node'); console.log('loaded:', a.backend, a.blasCore); }
catch (e) { if (e.code !== 'ERR_NO_CUDA_DEVICE') throw e; console.log('refuses without a GPU:', e.code, '-', e.message); }"
