#!/usr/bin/env bash
# gpu-check.sh — the device run (docs/cuda.md): everything the GPU issue asks of a GPU, in one go,
# with full logs under $OUT (or build-gpu/logs) and one table printed last.
#
# On the GPU machine (CUDA 13, nvcc, cmake, ninja, python3 with PyTorch and NVIDIA's wheels; no
# node, no libzmq) carry [".device", "dist"] made here by `npm run build && bash scripts/pack-device.sh`.
#   1. unpacks node, the production node_modules, libzmq and the CPU addon from .device/;
#   2. builds the CUDA kernels, their tests, the engine compiled for CUDA and paratrain_cuda.node;
#   3. runs the kernel test binaries (every kernel against its CPU twin);
#   4. compares a whole bert-mini and gpt-mini step through the CUDA addon with the CPU engine in
#      fp32, bf16 and fp16 (scripts/gpu-compare.mjs: loss, logits, every gradient, weights after a step);
#   5. trains bert-mini and gpt-mini (fp32) and gpt-mini (bf16) 200 steps on the GPU and compares the
#      losses with the fp32 CPU run's,
#      and bert-mini TP=2 as two processes on the one GPU (libzmq, host-staged) against TP=1;
#   6. times a training step of GPT-2 124M (seq 1024) and BERT-large (seq 128) against PyTorch on the
#      same GPU, in fp32 and in bf16 (paratrain: bf16 tensor-core GEMMs over fp32 storage; PyTorch:
#      bf16 autocast), with paratrain's bf16 MFU against the card's dense bf16 peak.
# Here, without a GPU, it goes as far as it can: the build, the kernel tests' "no CUDA device:
# skipped", the comparisons' CPU half (exit 77 overall).
# Exit status: 0 everything passed; 1 a build step or a check failed; 77 no CUDA device.
# STAGES="build kernels compare train bench" picks stages (default: all).
set -uo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD_DIR:-build-gpu}
LOGS=${OUT:-$BUILD/logs}
STAGES=${STAGES:-build kernels compare train bench}
mkdir -p "$LOGS"
die() { echo "gpu-check: $*" >&2; exit 1; }
stage() { [[ " $STAGES " == *" $1 "* ]]; }
status=0; rows=()
row() { rows+=("$1|$2"); }                     # check | result
fail() { status=1; row "$1" "FAIL: $2"; }
skip() { [ $status -eq 0 ] && status=77; row "$1" "skipped: $2"; }

# ---- 1. what the device lacks, from .device/ --------------------------------------------------
DEV=.device
if [ -f "$DEV/node.xz" ] && ! command -v node >/dev/null; then
  xz -dc "$DEV/node.xz" > /usr/local/bin/node && chmod +x /usr/local/bin/node || die "cannot install node"
fi
if [ -f "$DEV/node_modules.tar.xz" ] && [ ! -d node_modules/zod ]; then
  tar -xJf "$DEV/node_modules.tar.xz" || die "cannot unpack node_modules"
fi
if [ -f "$DEV/paratrain.node.xz" ] && [ ! -f build-cmake/Release/paratrain.node ]; then
  mkdir -p build-cmake/Release && xz -dc "$DEV/paratrain.node.xz" > build-cmake/Release/paratrain.node
fi
EXTRA=()
if [ -d "$DEV/zmq/lib" ]; then
  export LD_LIBRARY_PATH="$PWD/$DEV/zmq/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  EXTRA+=("-DZMQ_INCLUDE_DIR=$PWD/$DEV/zmq/include" "-DZMQ_LIBRARY=$PWD/$DEV/zmq/lib/libzmq.so.5")
fi
[ -f "$DEV/node-api/node_api.h" ] && EXTRA+=("-DPARATRAIN_NODE_API_INCLUDE=$PWD/$DEV/node-api")

command -v cmake >/dev/null || die "cmake not found"
NVCC=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[ -x "$NVCC" ] || die "nvcc not found (looked for \$CUDACXX, nvcc on PATH, /usr/local/cuda/bin/nvcc)"
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
# NVIDIA's libraries as pip wheels: site-packages/nvidia/<lib>/{include,lib}.
NVROOT=${PARATRAIN_NVIDIA_ROOT:-$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null || true)}
if [ -n "$NVROOT" ] && [ -d "$NVROOT/nvidia" ]; then
  EXTRA+=("-DPARATRAIN_NVIDIA_ROOT=$NVROOT")
  for d in "$NVROOT"/nvidia/*/lib; do LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; done
  export LD_LIBRARY_PATH
fi
card=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)

# ---- 2. build ---------------------------------------------------------------------------------
if stage build; then
  echo "== configure ($BUILD)"
  cmake -S . -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$NVCC" \
    -DPARATRAIN_CUDA=ON -DPARATRAIN_CUDA_ONLY=ON "${EXTRA[@]}" >"$LOGS/configure.log" 2>&1 \
    || { tail -30 "$LOGS/configure.log"; die "configure failed (full log: $LOGS/configure.log)"; }
  grep -E "CUDA kernels|CUDA addon|paratrain:" "$LOGS/configure.log"
  echo "== build"
  start=$(date +%s)
  cmake --build "$BUILD" -j "$(nproc)" >"$LOGS/build.log" 2>&1 \
    || { grep -E "error|Error" "$LOGS/build.log" | head -30; die "build failed (full log: $LOGS/build.log)"; }
  row "build" "$(( $(date +%s) - start )) s"
  # The loader looks for the CUDA addon beside the CPU one.
  if [ -f "$BUILD/Release/paratrain_cuda.node" ]; then
    mkdir -p build-cmake/Release && cp "$BUILD/Release/paratrain_cuda.node" build-cmake/Release/
  else
    row "paratrain_cuda.node" "not built (see $LOGS/configure.log: CUDA addon)"
  fi
fi

# ---- 3. the kernel tests ----------------------------------------------------------------------
if stage kernels; then
  for t in "$BUILD"/paratrain_cuda_*_tests; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    echo "== $name"
    timeout 300 "$t" >"$LOGS/$name.log" 2>&1; rc=$?
    grep -E "^(FAIL|device)" "$LOGS/$name.log" | head -40
    summary=$(grep -E "^[0-9]+ passed, [0-9]+ failed$" "$LOGS/$name.log" | tail -1)
    case $rc in
      0) row "$name" "$summary" ;;
      77) skip "$name" "no CUDA device" ;;
      124) fail "$name" "timed out after 300 s" ;;
      *) fail "$name" "${summary:-crashed} (exit $rc)" ;;
    esac
  done
fi

have_node() { command -v node >/dev/null && [ -f dist/engine/engine.js ]; }

# ---- 4. a whole step, CUDA against CPU --------------------------------------------------------
if stage compare; then
  if ! have_node; then skip "whole-model step" "no node or dist/ (carry .device and dist)"
  else
    for precision in fp32 bf16 fp16; do
      echo "== gpu-compare $precision"
      timeout 300 node scripts/gpu-compare.mjs --precision $precision >"$LOGS/compare-$precision.jsonl" 2>&1; rc=$?
      cat "$LOGS/compare-$precision.jsonl"
      worst=$(node -e "
        const rows = require('fs').readFileSync('$LOGS/compare-$precision.jsonl', 'utf8').split('\n').filter((l) => l.startsWith('{')).map(JSON.parse);
        const checked = rows.filter((r) => 'err' in r);
        const bad = checked.filter((r) => !r.ok);
        console.log(checked.length ? (bad.length ? bad.length + ' over tolerance, e.g. ' + bad[0].model + ' ' + bad[0].check + ' ' + bad[0].err.toExponential(2)
          : checked.length + ' checks, worst ' + Math.max(...checked.map((r) => r.err)).toExponential(2)) : 'no checks ran');" 2>/dev/null)
      case $rc in
        0) row "whole-model step ($precision)" "$worst" ;;
        77) skip "whole-model step ($precision)" "CUDA addon did not load (see $LOGS/compare-$precision.jsonl)" ;;
        *) fail "whole-model step ($precision)" "$worst (exit $rc)" ;;
      esac
    done
  fi
fi

# ---- 5. 200 steps on the GPU and on the CPU ---------------------------------------------------
if stage train; then
  if ! have_node; then skip "200-step runs" "no node or dist/"
  elif [ -z "$card" ]; then skip "200-step runs" "no GPU"
  else
    # "model[:precision]": the GPU run's GEMM precision; the CPU run is fp32.
    for run in bert-mini gpt-mini gpt-mini:bf16; do
      model=${run%%:*}; precision=fp32; [[ $run == *:* ]] && precision=${run#*:}
      for dev in cuda cpu; do
        tag=$model-$dev; p=fp32
        [ $dev = cuda ] && { tag=$model-$dev-$precision; p=$precision; }
        [ $dev = cpu ] && [ -f "$LOGS/run-$tag/log.jsonl" ] && continue  # one CPU run per model
        echo "== train $model on $dev ($p)"
        timeout 240 node bin/paratrain.js train --config "$model" --set train.steps=200 --set device=$dev \
          --set precision=$p --set run.dir="$LOGS/run-$tag" --set checkpoint.every=0 >"$LOGS/train-$tag.log" 2>&1 \
          || { fail "200 steps $model on $dev ($p)" "exit $? (see $LOGS/train-$tag.log)"; continue 2; }
      done
      verdict=$(node -e "
        const fs = require('fs');
        const losses = (dev) => fs.readFileSync('$LOGS/run-$model-' + dev + '/log.jsonl', 'utf8').split('\n')
          .filter(Boolean).map(JSON.parse).filter((e) => !e.event && typeof e.step === 'number' && typeof e.loss === 'number').map((e) => e.loss);
        const mean = (a) => a.reduce((s, x) => s + x, 0) / a.length;
        const [g, c] = [losses('cuda-$precision'), losses('cpu')];
        const [g0, g1, c0, c1] = [mean(g.slice(0, 10)), mean(g.slice(-10)), mean(c.slice(0, 10)), mean(c.slice(-10))];
        const ok = g1 < g0 - 0.5 && Math.abs(g1 - c1) / c1 < 0.05;
        console.log((ok ? 'ok' : 'FAIL') + ': loss ' + g0.toFixed(3) + ' -> ' + g1.toFixed(3) + ' (cpu ' + c0.toFixed(3) + ' -> ' + c1.toFixed(3) + ')');")
      if [[ $verdict == ok* ]]; then row "200 steps $model ($precision)" "$verdict"; else fail "200 steps $model ($precision)" "$verdict"; fi
    done
  fi
fi

# ---- 5b. TP=2 on the one GPU: two processes over the libzmq rings, staged through host memory ---
if stage train && have_node && [ -n "$card" ]; then
  echo "== launch bert-mini TP=2 on the GPU (zmq)"
  steps=20
  timeout 240 node bin/paratrain.js train --config bert-mini --set device=cuda --set train.steps=$steps \
    --set run.dir="$LOGS/run-tp1" >"$LOGS/train-tp1.log" 2>&1
  timeout 300 node bin/paratrain.js launch --nproc-per-node 2 --config bert-mini --set device=cuda \
    --set parallel.tensor=2 --set train.steps=$steps --set run.dir="$LOGS/run-tp2" >"$LOGS/launch-tp2.log" 2>&1
  rc=$?
  verdict=$(node -e "
    const fs = require('fs');
    const losses = (dir) => fs.readFileSync(dir + '/log.jsonl', 'utf8').split('\n').filter(Boolean).map(JSON.parse)
      .filter((e) => !e.event && typeof e.step === 'number' && typeof e.loss === 'number').map((e) => e.loss);
    const one = losses('$LOGS/run-tp1'), two = losses('$LOGS/run-tp2');
    const worst = Math.max(...one.map((l, i) => Math.abs(l - two[i]) / Math.abs(l)));
    console.log((one.length === $steps && two.length === $steps && worst < 1e-4 ? 'ok' : 'FAIL') + ': ' + two.length + ' steps, worst loss difference ' + worst.toExponential(2));" 2>&1)
  if [ $rc -eq 0 ] && [[ $verdict == ok* ]]; then row "TP=2 (2 processes, 1 GPU, zmq)" "$verdict"
  else fail "TP=2 (2 processes, 1 GPU, zmq)" "$verdict (launch exit $rc, see $LOGS/launch-tp2.log)"; fi
fi

# ---- 6. against PyTorch on the same GPU --------------------------------------------------------
if stage bench; then
  if ! have_node; then skip "benchmark" "no node or dist/"
  elif [ -z "$card" ]; then skip "benchmark" "no GPU"
  else
    PEAK_BF16=989e12  # H100 SXM / H200 dense bf16 (NVIDIA datasheets)
    bench() {  # name, paratrain preset, micro-batch, python args...
      local name=$1 preset=$2 mb=$3; shift 3
      echo "== bench $name"
      local rc_p=0
      for dtype in fp32 bf16; do
        timeout 180 node bin/paratrain.js bench --config "$preset" --set device=cuda --set precision=$dtype \
          --set train.micro_batch="$mb" --set optimizer.name=adamw --steps 10 --warmup 3 --json \
          >"$LOGS/bench-$name-paratrain-$dtype.json" 2>"$LOGS/bench-$name-paratrain-$dtype.err" || rc_p=$?
        # The target is PyTorch in bf16 autocast; its fp32 run would only cost device time.
        [ "$dtype" = bf16 ] || continue
        timeout 180 python3 scripts/bench_torch.py --device cuda --dtype $dtype --batch "$mb" --steps 10 --warmup 3 "$@" --json \
          >"$LOGS/bench-$name-torch-$dtype.json" 2>"$LOGS/bench-$name-torch-$dtype.err"
      done
      local line
      line=$(node -e "
        const fs = require('fs');
        const read = (f) => { try { return JSON.parse(fs.readFileSync(f, 'utf8').trim().split('\n').pop()); } catch { return null; } };
        const p32 = read('$LOGS/bench-$name-paratrain-fp32.json'), p16 = read('$LOGS/bench-$name-paratrain-bf16.json');
        const t32 = read('$LOGS/bench-$name-torch-fp32.json'), t16 = read('$LOGS/bench-$name-torch-bf16.json');
        const tps = (r) => r ? Math.round(r.tokens_per_s) : 'failed';
        const ratio = (a, b) => a && b ? ' (' + (a.tokens_per_s / b.tokens_per_s).toFixed(2) + 'x)' : '';
        const mfu = p16 ? (100 * p16.gflops * 1e9 / $PEAK_BF16).toFixed(1) + '%' : '-';
        console.log('bf16: paratrain ' + tps(p16) + ' tok/s, PyTorch autocast ' + tps(t16) + ratio(p16, t16) +
          ', paratrain MFU ' + mfu + ' of the bf16 peak; paratrain fp32 ' + tps(p32) + (t32 ? ', PyTorch fp32 ' + tps(t32) + ratio(p32, t32) : ''));")
      if [ $rc_p -eq 0 ]; then row "bench $name" "$line"; else fail "bench $name" "$line (paratrain exit $rc_p)"; fi
    }
    bench "gpt2-124m seq1024" gpt2-124m 8 --arch gpt --layers 12 --hidden 768 --heads 12 --ffn 3072 --seq 1024
    bench "bert-large seq128" bert-large 32 --arch bert --layers 24 --hidden 1024 --heads 16 --ffn 4096 --seq 128 --positions 512
  fi
fi

echo
echo "date: $(date -u +%F), card: ${card:-no GPU (nvidia-smi: none)}"
echo "| check | result |"
echo "|---|---|"
for r in "${rows[@]}"; do echo "| ${r%%|*} | ${r#*|} |"; done | tee "$LOGS/summary.md"
exit $status
