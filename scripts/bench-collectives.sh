#!/usr/bin/env bash
# All-reduce bandwidth of the zmq ring communicator (cpp/comm/zmq_ring.*) on this machine: 2 and 4
# ranks as forked processes, over ipc and tcp (127.0.0.1), 1 KiB … 256 MiB, next to the machine's
# memcpy bandwidth. Prints a markdown table (docs/collectives.md has a run of it).
#
#   bash scripts/bench-collectives.sh                                # the full run: a few minutes on 2 cores
#   bash scripts/bench-collectives.sh --max-bytes 16M --ranks 2      # quicker
#
# Arguments go to build-cmake/paratrain_comm_bench unchanged. It builds nothing: run
# `npm run build:native` first.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BENCH=build-cmake/paratrain_comm_bench
if [[ ! -x "$BENCH" ]]; then
  echo "bench-collectives: $BENCH is missing; build it with: npm run build:native" >&2
  exit 1
fi
# The malloc settings `paratrain launch` gives its workers (src/launch/worker-env.ts); run with
# GLIBC_TUNABLES= (empty) to see glibc's defaults.
export GLIBC_TUNABLES="${GLIBC_TUNABLES-glibc.malloc.mmap_threshold=16777216:glibc.malloc.trim_threshold=67108864}"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $BENCH $*, GLIBC_TUNABLES=${GLIBC_TUNABLES:-(glibc defaults)}"
exec "$BENCH" "$@"
