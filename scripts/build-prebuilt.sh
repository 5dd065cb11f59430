#!/usr/bin/env bash
# build-prebuilt.sh — builds the prebuilt CPU addon the npm package ships,
# prebuilds/linux-x64/paratrain.node (docs/packaging.md). `npm pack` and `npm publish` run it
# (package.json "prepack"); run it by hand to check a build.
#
# It is the one native build (npm run build:native, build-cmake/) with every setting that shapes the
# binary given here, so the prebuilt is the addon the test suite ran and a rebuild of the same
# sources on the same Debian 12 toolchain gives the same bytes:
#   - OpenBLAS linked statically (the OpenMP build), so the addon needs no libopenblas at run time;
#   - AVX2 + FMA code for our own loops (the build's default; OpenBLAS picks its kernels at run time);
#   - stripped, no build paths inside.
# It then checks that the addon needs only the shared libraries the loader knows how to report
# (libzmq5, libgomp1, and the C/C++ runtime every Node.js install has) and that it loads.
set -euo pipefail
cd "$(dirname "$0")/.."

tag="$(node -p 'process.platform + "-" + process.arch')"
if [ "$tag" != linux-x64 ] || ! getconf GNU_LIBC_VERSION > /dev/null 2>&1; then
  echo "build-prebuilt: the package ships a prebuilt engine for linux-x64 (glibc) only; this is $tag" >&2
  exit 1
fi
if [ ! -f /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.a ]; then
  echo "build-prebuilt: the static OpenBLAS is missing: apt-get install libopenblas-openmp-dev" >&2
  exit 1
fi

# The settings that shape the binary, pinned: on the first configure through cmake-js, and in a
# build-cmake/ configured before (cmake-js's compile would keep whatever its cache holds).
pinned=(-DCMAKE_BUILD_TYPE=Release -DPARATRAIN_OPENBLAS_STATIC=ON "-DPARATRAIN_CPU_FLAGS=-mavx2 -mfma")
if [ -f build-cmake/CMakeCache.txt ]; then
  cmake -S . -B build-cmake "${pinned[@]}" > /dev/null
  npm run build:native
else
  npm run build:native -- "${pinned[@]/#-D/--CD}"
fi

built=build-cmake/Release/paratrain.node
out="prebuilds/$tag/paratrain.node"
mkdir -p "$(dirname "$out")"
strip --strip-unneeded -o "$out" "$built"

# Only these may be needed at run time; anything else would make the prebuilt fail on a user's
# machine with a message the loader cannot turn into a fix.
allowed=" libzmq.so.5 libgomp.so.1 libstdc++.so.6 libm.so.6 libgcc_s.so.1 libc.so.6 ld-linux-x86-64.so.2 "
for lib in $(readelf -d "$out" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
  if [[ "$allowed" != *" $lib "* ]]; then
    echo "build-prebuilt: $out needs $lib, which the package cannot promise (allowed:$allowed)" >&2
    exit 1
  fi
done

node -e '
  const addon = require(process.argv[1]);
  console.log(`build-prebuilt: ${process.argv[1]}: ${addon.backend} engine, ABI ${addon.abiVersion}, OpenBLAS ${addon.blasCore}`);
' "$PWD/$out"
echo "build-prebuilt: $(du -h "$out" | cut -f1)  sha256 $(sha256sum "$out" | cut -d' ' -f1)"
