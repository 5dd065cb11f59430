#!/usr/bin/env bash
# What authentication costs a training job: bert-mini at TP=2 × DP=2 through `paratrain launch`,
# tokens/s (median over the steps after the first two) for one node (rings over ipc) and for two
# launchers on loopback (the DP rings between them over TCP), with the default authentication,
# without the data plane's CURVE, and with none. All runs in one go, so they share the machine's
# state; compare within a run. docs/security.md has a run of it.
#
#   bash scripts/bench-auth.sh            # 20 steps per run
#   STEPS=40 bash scripts/bench-auth.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
STEPS="${STEPS:-20}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
key="$work/job.key"
head -c 32 /dev/urandom | base64 > "$key"
chmod 600 "$key"

common=(--config bert-mini --set parallel.tensor=2 --set "train.steps=$STEPS" --set train.log_every=1
  --set train.eval_every=0 --set checkpoint.every=0 --set data.cache_dir=.paratrain-cache)

# median tokens/s of rank 0's step lines after the second
tokens_per_s() {
  node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map(JSON.parse);
    const t = lines.filter((l) => l.step > 2 && l.tokens_per_s).map((l) => l.tokens_per_s).sort((a, b) => a - b);
    console.log(t.length ? t[Math.floor(t.length / 2)].toFixed(0) : "-");
  ' "$1/log.jsonl"
}

one_node() {  # name, flags...
  local name="$1" dir="$work/$1"
  shift
  node bin/paratrain.js launch --nproc-per-node 4 --master-port "$(port)" "${common[@]}" --set "run.dir=$dir" "$@" \
    > "$dir.out" 2>&1 || { echo "$name failed: $(tail -3 "$dir.out")" >&2; return 1; }
  echo "| $name | $(tokens_per_s "$dir") |"
}

two_nodes() {  # name, flags...
  local name="$1" dir="$work/$1" p
  shift
  p="$(port)"
  for n in 0 1; do
    node bin/paratrain.js launch --nnodes 2 --node-rank "$n" --nproc-per-node 2 --master-port "$p" "${common[@]}" \
      --set "run.dir=$dir" "$@" > "$dir.$n.out" 2>&1 &
  done
  wait || { echo "$name failed: $(tail -3 "$dir.0.out")" >&2; return 1; }
  echo "| $name | $(tokens_per_s "$dir") |"
}

port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, bert-mini TP=2 x DP=2, $STEPS steps"
echo
echo "| layout, authentication | tokens/s |"
echo "|---|---|"
one_node "one node, default (a job key; rings over ipc)"
one_node "one node, --no-auth" --no-auth
two_nodes "two nodes, --auth-key-file (rings between nodes over TCP+CURVE)" --auth-key-file "$key"
two_nodes "two nodes, --auth-key-file --no-data-plane-auth" --auth-key-file "$key" --no-data-plane-auth
two_nodes "two nodes, --no-auth" --no-auth
