#!/usr/bin/env bash
# Issue 17's studies in the order they are needed, each resumable (run this again after any interruption; finished
# runs come from the store): the STS-B pruning study (four methods, dense, floor), the Child-Tuning study, then
# gradual-magnitude as the pruning study's fifth method. Two members at a time (WORKERS=2).
# A fresh store (a new machine) first takes what the repository holds: the finished pruning study from results/ and
# an unfinished study's finished members from work-in-progress/ (`export --partial`), so only missing runs train.
#   PRUNESCOPE_STORE=runs nohup nice -n 5 tools/study-issue17.sh > /tmp/study-issue17.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for folder in results/pruning-stsb-window work-in-progress; do
  [ -d "$folder" ] && $PY -m analysis import "$folder" --json | tail -1
done
tools/study-pruning-stsb.sh
tools/study-child-tuning.sh
METHODS=gradual-magnitude tools/study-pruning-stsb.sh
