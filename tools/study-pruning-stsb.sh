#!/usr/bin/env bash
# Issue 17's pruning study where pre-trained knowledge matters: STS-B (floor-to-dense window measured first with
# tools/study-window.sh: at 2k examples dense Pearson 0.845, embedding-bag floor 0.14), the SparseBERT authors'
# schedule (configs/sparsebert-authors.yaml: constant 3e-5, 12 epochs), 1,000 training examples, the dev set scored
# once at the end (no per-epoch curve: it cost a fifth of each run). Compute plan (bench precision, this AMD EPYC,
# fp32, one thread): a sparsebert member ~10 min, magnitude/random ~6, small-dense ~3, i.e. ~5 core-hours for
# four methods x four sparsities x three seeds; 2,000 examples would have been ~14 (NOTES, session 7).
# Order: the dense teacher, the four-method sweep (two members at once), the dense seeds 1-2 and the
# embedding-bag floor. METHODS=gradual-magnitude runs the fifth method as a second sweep (tools/study-issue17.sh
# runs it after the Child-Tuning study). Resumable: run it again after any interruption
# (finished runs come from the store, an interrupted one continues from its checkpoint). Precision pinned to fp32
# so run ids hold on any CPU.
# Export when done:  python -m analysis export SWEEP_RUN_ID --to results/pruning-stsb-window
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORKERS=${WORKERS:-2}
COMMON=(--config configs/sparsebert-authors.yaml --dataset stsb --train-size 1000 --no-eval-every-epoch --precision fp32)
$PY -m analysis finetune "${COMMON[@]}" --seed 0 --threads "$WORKERS" --json | tail -1   # the dense teacher
$PY -m analysis sweep pruning "${COMMON[@]}" --methods "${METHODS:-sparsebert,magnitude,random,small-dense}" \
    --sparsities 0.5,0.7,0.8,0.9 --seeds 0,1,2 --workers "$WORKERS" --threads 1 --json | tail -1
for seed in 1 2; do
  $PY -m analysis finetune "${COMMON[@]}" --seed $seed --threads "$WORKERS" --json | tail -1
done
for seed in 0 1 2; do
  for lr in 1e-3 3e-3 1e-2; do  # the floor: the best of three learning rates per seed
    $PY -m analysis finetune "${COMMON[@]}" --model embedding-bag --lr $lr --seed $seed --threads "$WORKERS" \
        --json | tail -1
  done
done
