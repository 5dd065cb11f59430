#!/usr/bin/env bash
# compare-layouts.sh — a tiny BERT and GPT-2 trained 20 steps in every tensor/data-parallel layout
# (paratrain launch: real worker processes over real sockets) and in one process on the same global
# batch (paratrain train); prints the worst relative difference of per-step loss and grad norm.
# test/launch/distributed-training.test.ts asserts the same within 1e-5.
#
#   bash scripts/compare-layouts.sh            # about a minute on 2 cores
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=bin/paratrain.js
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SETS=(model.layers=2 model.hidden=32 model.heads=4 model.ffn=64 model.vocab_size=800 model.seq_len=32
  model.dropout=0 train.micro_batch=4 train.steps=20 train.log_every=1 train.eval_every=0 train.threads=1
  checkpoint.every=0 data.max_documents=30 "data.cache_dir=$WORK/cache")
set_args() { for s in "${SETS[@]}" "$@"; do printf -- '--set\n%s\n' "$s"; done; }

worst() {
  node -e '
const fs = require("fs");
const steps = (d) => fs.readFileSync(d + "/log.jsonl", "utf8").split("\n").filter(Boolean).map(JSON.parse)
  .filter((r) => typeof r.grad_norm === "number");
const [a, b] = [steps(process.argv[1]), steps(process.argv[2])];
if (a.length !== b.length) throw new Error(`step counts differ: ${a.length} vs ${b.length}`);
let w = 0;
for (let i = 0; i < b.length; i++)
  w = Math.max(w, Math.abs(a[i].loss - b[i].loss) / b[i].loss, Math.abs(a[i].grad_norm - b[i].grad_norm) / b[i].grad_norm);
console.log(`${process.argv[3]}: ${b.length} steps, worst relative difference ${w.toExponential(2)}`);' "$1" "$2" "$3"
}

for arch in bert gpt; do
  preset=$([ "$arch" = bert ] && echo bert-mini || echo gpt-mini)
  for layout in "2 1" "1 2" "2 2" "4 1"; do
    read -r tp dp <<<"$layout"
    ref="$WORK/$arch-ref-$dp" run="$WORK/$arch-tp$tp-dp$dp"
    if [ ! -d "$ref" ]; then
      mapfile -t args < <(set_args "train.grad_accum=$dp" "run.dir=$ref")
      node "$BIN" train --config "$preset" "${args[@]}" >/dev/null 2>&1
    fi
    mapfile -t args < <(set_args "parallel.tensor=$tp" "run.dir=$run")
    node "$BIN" launch --nproc-per-node $((tp * dp)) --master-port "${MASTER_PORT:-29812}" --config "$preset" \
      "${args[@]}" >/dev/null 2>&1
    worst "$run" "$ref" "$arch TP=$tp DP=$dp"
  done
done
