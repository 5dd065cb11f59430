#!/usr/bin/env bash
# pack-device.sh — what the GPU machine needs that it does not have (it has CUDA, cmake, ninja,
# python with PyTorch and NVIDIA's wheels; no node, no libzmq), packed into .device/ (git ignores
# it) for the device run's `carry` (64 MiB in all, with dist/):
#   node.xz                 this machine's node binary (../shared/device/pack-node.sh)
#   node_modules.tar.xz     the production dependencies, linux-x64 only
#   node-api/               node's N-API headers (the addon uses N-API only), for the CUDA addon build
#   zmq/include, zmq/lib    libzmq's header and shared library with the libraries it needs
#   paratrain.node.xz       the CPU addon (OpenBLAS linked in): the reference of the comparisons
# scripts/gpu-check.sh unpacks them. Usage: bash scripts/pack-device.sh   (after npm run build)
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "pack-device: $*" >&2; exit 1; }
[ -f build-cmake/Release/paratrain.node ] || die "build the CPU addon first (npm run build:native)"
[ -f dist/cli/main.js ] || [ -d dist ] || die "build the TypeScript first (npm run build:ts)"
out=.device
mkdir -p "$out"
grep -qx "/$out/" .git/info/exclude 2>/dev/null || echo "/$out/" >> .git/info/exclude

bash ../shared/device/pack-node.sh "$out" >/dev/null

# Production packages only; prebuilt binaries for other platforms left out.
npm ls --omit=dev --parseable --all 2>/dev/null | sed "s#^$PWD/##" | grep '^node_modules/' | sort -u > "$out/packages.txt"
tar -cf - --exclude='node_modules/tokenizers/tokenizers.*-arm*.node' --exclude='node_modules/tokenizers/tokenizers.*-musl*.node' \
  --exclude='node_modules/tokenizers/tokenizers.darwin-*.node' --exclude='node_modules/tokenizers/tokenizers.win32-*.node' \
  --exclude='node_modules/tokenizers/tokenizers.android-*.node' --exclude='node_modules/zeromq/build/darwin' \
  --exclude='node_modules/zeromq/build/win32' --exclude='node_modules/zeromq/build/linux/arm64' \
  -T "$out/packages.txt" | xz -T2 -6 > "$out/node_modules.tar.xz"

node_inc=$(sed -n 's/^CMAKE_JS_INC:[A-Z]*=//p' build-cmake/CMakeCache.txt)
[ -f "$node_inc/node_api.h" ] || node_inc=/usr/include/node
mkdir -p "$out/node-api"
cp "$node_inc"/{node_api.h,node_api_types.h,js_native_api.h,js_native_api_types.h} "$out/node-api/"

# libzmq and what it links that a minimal system may lack (glibc's own libraries stay behind).
mkdir -p "$out/zmq/include" "$out/zmq/lib"
cp "$(echo '#include <zmq.h>' | cpp -H -o /dev/null 2>&1 | sed -n 's/^\. //p' | head -1)" "$out/zmq/include/"
zmq=$(ldconfig -p | awk '/libzmq\.so\.5 /{print $NF; exit}')
[ -n "$zmq" ] || die "libzmq.so.5 not found (apt-get install libzmq5)"
gomp=$(ldconfig -p | awk '/libgomp\.so\.1 /{print $NF; exit}')
for lib in "$zmq" "$gomp" $(ldd "$zmq" | awk '/=>/{print $3}'); do
  case $(basename "$lib") in libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|libresolv.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) continue ;; esac
  cp -L "$lib" "$out/zmq/lib/"
done

xz -T2 -6 -c build-cmake/Release/paratrain.node > "$out/paratrain.node.xz"
du -sh "$out" dist
echo "carry: [\".device\", \"dist\"]"
