#!/usr/bin/env bash
# Run the quick version of every experiment, one after the other, and build the report.
# Usage: experiments/run_quick.sh [DATA_DIR] [OUT_DIR]   (defaults: ../shared/data, experiments/runs)
# Each run writes experiments/runs/<name>/ (results, config.json, figures, log) and resumes
# from its checkpoints if interrupted: rerun the script to continue.
set -u
DATA=${1:-../shared/data}
OUT=${2:-experiments/runs}
mkdir -p "$OUT"
for name in hbode-vs-ode silverbox-init pointcloud walker2d adjoint-decay plane-vibration mnist cifar10 nfe-vs-tol; do
  echo "=== $name $(date +%T)"
  /usr/bin/time -f "$name wall %e s" pyhbnode reproduce "$name" --quick --quiet --threads 2 --seed 0 \
      --data-dir "$DATA" --out "$OUT/$name" > "$OUT/$name.log" 2>&1
  echo "exit $? ($(tail -1 "$OUT/$name.log"))"
done
pyhbnode report "$OUT" --out "$OUT/report.md" --html
