#!/usr/bin/env bash
# Installs everything paratrain needs on a fresh Debian/Ubuntu machine and builds it:
# system packages through apt (only those missing), npm packages, the native engine, the TypeScript.
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Compilers, cmake, OpenBLAS (the OpenMP build, so BLAS and our loops share one thread team),
# libzmq (the distributed data plane), python3 (node-gyp), chromium (the dashboard's browser test,
# test/dashboard/dashboard.test.ts, drives it headless).
packages=(build-essential cmake pkg-config libopenblas-openmp-dev libzmq3-dev python3 xz-utils chromium)
command -v node > /dev/null || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: paratrain needs Node.js 20 or newer (found $(node --version)); install it from nodejs.org or NodeSource" >&2
  exit 1
fi

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
echo "setup: done. Try: npx paratrain train   (a short BERT pretraining on the bundled corpus)"
