#!/usr/bin/env bash
# Issue 17's pruning study where pre-trained knowledge matters: STS-B (floor-to-dense window measured first with
# tools/study-window.sh: dense Pearson 0.845, embedding-bag floor 0.14), 2,000 training examples, the SparseBERT
# authors' schedule (configs/sparsebert-authors.yaml: constant 3e-5, 12 epochs), five methods x four sparsities x
# three seeds, seed by seed. Resumable: run it again after any interruption (finished runs come from the store,
# an interrupted one continues from its checkpoint). Precision pinned to fp32 so run ids hold on any CPU.
# Export when done:  python -m analysis export SWEEP_RUN_ID --to results/pruning-stsb-window
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
THREADS=${THREADS:-1}
for lr in 1e-2; do  # one more floor learning rate (1e-3 and 3e-3 ran in study-window.sh): the floor is the best
  $PY -m analysis finetune --config configs/sparsebert-authors.yaml --dataset stsb --train-size 2000 \
      --model embedding-bag --lr $lr --precision fp32 --threads "$THREADS" --json | tail -1
done
$PY -m analysis sweep pruning --config configs/sparsebert-authors.yaml --dataset stsb --train-size 2000 \
    --methods sparsebert,gradual-magnitude,magnitude,random,small-dense --sparsities 0.5,0.7,0.8,0.9 --seeds 0,1,2 \
    --precision fp32 --threads "$THREADS" --json | tail -1
