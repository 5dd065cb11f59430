#!/usr/bin/env bash
# What authentication costs a training job: bert-mini at TP=2 × DP=2 through `paratrain launch`,
# tokens/s (median over the steps after the first two) for one node and for two launchers on this
# host (a two-node job; their rings still meet over ipc, sharing a host name, but are CURVE-encrypted
# as between real nodes), with the default authentication,
# without the data plane's CURVE, and with none. The layouts take turns, ROUNDS times, and each
# cell is the median of its rounds, so a machine that gets busier or quieter mid-run skews them
# alike; compare within a run. docs/security.md has a run of it.
#
#   bash scripts/bench-auth.sh                  # 3 rounds of 15 steps per layout
#   ROUNDS=5 STEPS=30 bash scripts/bench-auth.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
STEPS="${STEPS:-15}"
ROUNDS="${ROUNDS:-3}"
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

one_node() {  # flags... → tokens/s
  local dir
  dir="$(mktemp -d "$work/run.XXXX")"
  node bin/paratrain.js launch --nproc-per-node 4 --master-port "$(port)" "${common[@]}" --set "run.dir=$dir" "$@" \
    > "$dir.out" 2>&1 || { echo "one node $* failed: $(tail -3 "$dir.out")" >&2; return 1; }
  tokens_per_s "$dir"
}

two_nodes() {  # flags... → tokens/s
  local dir p pids=()
  dir="$(mktemp -d "$work/run.XXXX")"
  p="$(port)"
  for n in 0 1; do
    node bin/paratrain.js launch --nnodes 2 --node-rank "$n" --nproc-per-node 2 --master-port "$p" "${common[@]}" \
      --set "run.dir=$dir" "$@" > "$dir.$n.out" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || { echo "two nodes $* failed: $(tail -3 "$dir.0.out")" >&2; return 1; }
  done
  tokens_per_s "$dir"
}

port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

names=("one node, default (a job key; rings over ipc)" "one node, --no-auth"
  "two nodes, --auth-key-file (rings CURVE-encrypted)"
  "two nodes, --auth-key-file --no-data-plane-auth" "two nodes, --no-auth")
run_layout() {
  case "$1" in
    0) one_node ;;
    1) one_node --no-auth ;;
    2) two_nodes --auth-key-file "$key" ;;
    3) two_nodes --auth-key-file "$key" --no-data-plane-auth ;;
    4) two_nodes --no-auth ;;
  esac
}
declare -A results
for ((round = 1; round <= ROUNDS; round++)); do
  for l in 0 1 2 3 4; do
    results[$l]+="$(run_layout "$l") "
    echo "round $round: ${names[$l]}: ${results[$l]}" >&2
  done
done

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, bert-mini TP=2 x DP=2, $STEPS steps, median of $ROUNDS rounds"
echo
echo "| layout, authentication | tokens/s | rounds |"
echo "|---|---|---|"
for l in 0 1 2 3 4; do
  median=$(echo "${results[$l]}" | tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "| ${names[$l]} | $median | ${results[$l]% } |"
done
