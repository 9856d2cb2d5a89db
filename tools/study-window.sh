#!/usr/bin/env bash
# The floor-to-dense knowledge window on candidate tasks (issue 17), before choosing the pruning study's dataset:
# a dense fine-tune (the SparseBERT authors' schedule) and the embedding-bag floor at two learning rates, per task.
# Resumable: finished runs are served from the store; an interrupted one is resumed by running this again.
# Precision is pinned to fp32 so that a study continued on another CPU (AVX2, where bf16 is slow) keeps its run ids.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
THREADS=${THREADS:-1}
for ds in sst2 stsb; do
  $PY -m analysis finetune --config configs/sparsebert-authors.yaml --dataset $ds --train-size 2000 \
      --precision fp32 --threads "$THREADS" --json | tail -1
  for lr in 1e-3 3e-3; do
    $PY -m analysis finetune --config configs/sparsebert-authors.yaml --dataset $ds --train-size 2000 \
        --model embedding-bag --lr $lr --precision fp32 --threads "$THREADS" --json | tail -1
  done
done
