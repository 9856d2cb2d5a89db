#!/usr/bin/env bash
# Issue 17's studies in the order they are needed, each resumable (run this again after any interruption; finished
# runs come from the store): the STS-B pruning study (four methods, dense, floor), the Child-Tuning study, then
# gradual-magnitude as the pruning study's fifth method. Two members at a time (WORKERS=2), fp32.
#   PRUNESCOPE_STORE=runs nohup nice -n 5 tools/study-issue17.sh > /tmp/study-issue17.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
tools/study-pruning-stsb.sh
tools/study-child-tuning.sh
METHODS=gradual-magnitude tools/study-pruning-stsb.sh
