#!/usr/bin/env bash
# Compare paratrain's training throughput with the PyTorch reference (scripts/bench_torch.py) on CPU.
#
# For each model (bert-mini, gpt-mini) and each round it runs, alternating,
#   node bin/paratrain.js bench --config configs/<model>.yaml --set optimizer.name=adamw --steps $STEPS --json
#   /usr/bin/python3 scripts/bench_torch.py --arch ... <same shapes> --steps $STEPS --threads $THREADS --json
# and prints a table: model, paratrain tokens/s, pytorch tokens/s, ratio (paratrain / pytorch).
# With ROUNDS > 1 the medians over rounds are reported.
#
# Environment:
#   STEPS=10          timed steps per run
#   THREADS=2         threads for both (PyTorch: torch.set_num_threads; paratrain: PARATRAIN_NUM_THREADS)
#   WARMUP=2          PyTorch warmup steps
#   ROUNDS=1          alternating rounds per model
#   MODELS="bert-mini gpt-mini"
#   PARATRAIN_ARGS="" extra arguments appended to the paratrain bench command
#   PYTHON=/usr/bin/python3 (needs torch)
#   KEEP_JSON=dir     also write every raw JSON result into dir
#
# The shapes passed to the PyTorch script must match configs/<model>.yaml:
#   bert-mini: L4 H256 A4 FF1024 vocab 30522 seq 128 micro_batch 16
#   gpt-mini:  L4 H256 A4 FF1024 vocab 50257 seq 256 micro_batch 8
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

STEPS="${STEPS:-10}"
THREADS="${THREADS:-2}"
WARMUP="${WARMUP:-2}"
ROUNDS="${ROUNDS:-1}"
MODELS="${MODELS:-bert-mini gpt-mini}"
PARATRAIN_ARGS="${PARATRAIN_ARGS:-}"
PYTHON="${PYTHON:-/usr/bin/python3}"
KEEP_JSON="${KEEP_JSON:-}"

export OMP_NUM_THREADS="$THREADS" PARATRAIN_NUM_THREADS="$THREADS"
# Both sides get the same OpenBLAS kernels: the family paratrain's loader picks for this CPU
# (docs/threading.md), unless OPENBLAS_CORETYPE is already set.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  OPENBLAS_CORETYPE="$(node -p "require('./dist/engine/native.js').chooseBlasCoreType() || ''")"
  [ -n "$OPENBLAS_CORETYPE" ] && export OPENBLAS_CORETYPE
fi
echo "bench-vs-pytorch: threads=$THREADS OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(OpenBLAS default)}"

die() { echo "bench-vs-pytorch: error: $*" >&2; exit 1; }

shape_args() {
  case "$1" in
    bert-mini) echo "--arch bert --layers 4 --hidden 256 --heads 4 --ffn 1024 --vocab 30522 --seq 128 --batch 16" ;;
    gpt-mini)  echo "--arch gpt --layers 4 --hidden 256 --heads 4 --ffn 1024 --vocab 50257 --seq 256 --batch 8" ;;
    *) die "unknown model '$1' (known: bert-mini gpt-mini)" ;;
  esac
}

# Extract a numeric field from the last JSON object line of a file; fails if absent.
json_field() {
  "$PYTHON" - "$1" "$2" <<'PY'
import json, sys
path, key = sys.argv[1], sys.argv[2]
obj = None
for line in open(path, encoding="utf-8", errors="replace"):
    line = line.strip()
    if line.startswith("{") and line.endswith("}"):
        try:
            cand = json.loads(line)
        except ValueError:
            continue
        if isinstance(cand, dict):
            obj = cand
if obj is None or key not in obj:
    sys.exit(1)
print(float(obj[key]))
PY
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

[[ -x "$PYTHON" ]] || die "$PYTHON not found"
"$PYTHON" -c 'import torch' 2>/dev/null || die "$PYTHON cannot import torch"
command -v node >/dev/null || die "node not found"
[[ -f bin/paratrain.js ]] || die "bin/paratrain.js not found (build paratrain first)"
for m in $MODELS; do
  [[ -f "configs/$m.yaml" ]] || die "configs/$m.yaml not found"
  shape_args "$m" >/dev/null
done
[[ -n "$KEEP_JSON" ]] && mkdir -p "$KEEP_JSON"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

declare -A PT_TPS TO_TPS PT_MS TO_MS
for m in $MODELS; do
  for ((r = 1; r <= ROUNDS; r++)); do
    echo "[$m round $r/$ROUNDS] paratrain ..." >&2
    # shellcheck disable=SC2086
    if ! node bin/paratrain.js bench --config "configs/$m.yaml" --set optimizer.name=adamw \
        --steps "$STEPS" --json $PARATRAIN_ARGS >"$tmp/pt.out" 2>"$tmp/pt.err"; then
      echo "--- paratrain stderr (tail) ---" >&2; tail -n 30 "$tmp/pt.err" >&2
      echo "--- paratrain stdout (tail) ---" >&2; tail -n 10 "$tmp/pt.out" >&2
      die "paratrain bench failed for $m"
    fi
    pt_tps="$(json_field "$tmp/pt.out" tokens_per_s)" || {
      tail -n 10 "$tmp/pt.out" >&2; die "paratrain bench for $m printed no JSON object with tokens_per_s"; }
    pt_ms="$(json_field "$tmp/pt.out" step_ms || echo nan)"
    [[ -n "$KEEP_JSON" ]] && grep -E '^\s*\{' "$tmp/pt.out" | tail -n 1 >"$KEEP_JSON/$m.paratrain.$r.json"

    echo "[$m round $r/$ROUNDS] pytorch ..." >&2
    # shellcheck disable=SC2046
    if ! "$PYTHON" scripts/bench_torch.py $(shape_args "$m") --steps "$STEPS" --warmup "$WARMUP" \
        --threads "$THREADS" --json >"$tmp/to.out" 2>"$tmp/to.err"; then
      tail -n 30 "$tmp/to.err" >&2
      die "pytorch bench failed for $m"
    fi
    to_tps="$(json_field "$tmp/to.out" tokens_per_s)" || die "pytorch bench for $m printed no JSON"
    to_ms="$(json_field "$tmp/to.out" step_ms)"
    [[ -n "$KEEP_JSON" ]] && tail -n 1 "$tmp/to.out" >"$KEEP_JSON/$m.pytorch.$r.json"

    PT_TPS[$m]+="$pt_tps "; TO_TPS[$m]+="$to_tps "; PT_MS[$m]+="$pt_ms "; TO_MS[$m]+="$to_ms "
    printf '  %s: paratrain %.0f tok/s (%.1f ms/step), pytorch %.0f tok/s (%.1f ms/step)\n' \
      "$m" "$pt_tps" "$pt_ms" "$to_tps" "$to_ms" >&2
  done
done

torch_ver="$("$PYTHON" -c 'import torch; print(torch.__version__)')"
echo
echo "threads=$THREADS steps=$STEPS rounds=$ROUNDS torch=$torch_ver optimizer=adamw (tokens/s, median over rounds)"
printf '%-10s %18s %16s %8s\n' model "paratrain tok/s" "pytorch tok/s" ratio
for m in $MODELS; do
  # shellcheck disable=SC2086
  p="$(median ${PT_TPS[$m]})"; t="$(median ${TO_TPS[$m]})"
  ratio="$(awk -v p="$p" -v t="$t" 'BEGIN { if (t > 0) printf "%.2fx", p / t; else print "n/a" }')"
  printf '%-10s %18.0f %16.0f %8s\n' "$m" "$p" "$t" "$ratio"
done
