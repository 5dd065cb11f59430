#!/usr/bin/env bash
# launch.sh — `paratrain launch` from this checkout, for cluster job scripts (Slurm's srun, a
# Kubernetes container): same arguments, run from the repository whatever the working directory.
# One launcher per node; see docs/launching.md.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -f "$repo/dist/cli/main.js" ]; then
  echo "launch.sh: $repo is not built; run 'bash scripts/setup.sh' (or 'npm run build') there first" >&2
  exit 1
fi
# exec: the launcher receives Slurm's and Kubernetes' signals itself and stops its workers.
exec node "$repo/bin/paratrain.js" launch "$@"
