#!/usr/bin/env bash
# Issue 17's Child-Tuning study (configs/child-tuning-selected.yaml): selection of lr and p per arm on a held-out
# part, then five seeds, two members at once (WORKERS). Resumable: run it again after any interruption.
# Export when done:  python -m analysis export STUDY_RUN_ID --to results/child-tuning-selected
# Not done when the session ends: python -m analysis export STUDY_RUN_ID --partial --to work-in-progress/child-tuning
# and commit it; the next machine imports it (tools/study-issue17.sh does) and trains only the missing members.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -m analysis sweep child-tuning --config configs/child-tuning-selected.yaml --workers "${WORKERS:-2}" --threads 1 --json | tail -1
