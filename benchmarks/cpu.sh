#!/usr/bin/env bash
# The CPU table of docs/performance.md: experiment 1 (ViT-S/8 at 128 px) at a small
# batch of 4 images x 4 views on the local Imagenette copy, with SIGReg only, with SIGReg and the
# Lévy 2D prior (gamma = 1) and as the baseline recipe (gamma = 0: within logged, no gradient),
# each run REPEATS times, the configurations interleaved; then the medians (benchmarks/table.py).
#
#   bash benchmarks/cpu.sh                 # about 15-25 minutes on 2 cores
#   REPEATS=1 STEPS=2 bash benchmarks/cpu.sh
#
# DATA (default ../shared/data/imagenette-160), PYTHON (default .venv/bin/python), OUT (default
# runs/bench, not committed): the JSON lines go to $OUT/cpu.jsonl, the table to $OUT/cpu.md.
set -uo pipefail
# OpenMP threads that spin at every barrier lose their core on a machine shared with other work
# and then make small operations 10-25 times slower; passive waiting keeps the numbers usable
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
PY=${PYTHON:-.venv/bin/python}
DATA=${DATA:-../shared/data/imagenette-160}
OUT_DIR=${OUT:-runs/bench}
REPEATS=${REPEATS:-3}
STEPS=${STEPS:-3}
mkdir -p "$OUT_DIR"
JSONL="$OUT_DIR/cpu.jsonl"
: > "$JSONL"
RECIPE=recipes/image_levy2d.yaml
COMMON=("data.root=$DATA" data.batch_size=4 data.workers=0 "log.trackers=[]" log.pictures=false
        trainer.device=cpu)

for r in $(seq "$REPEATS"); do
  for config in sigreg levy2d baseline; do
    case $config in
      sigreg) extra=(priors.within=null); label="SIGReg only" ;;
      levy2d) extra=(priors.within.weight=1.0); label="SIGReg + levy2d (gamma 1)" ;;
      baseline) extra=(priors.within.weight=0.0); label="baseline: SIGReg, levy2d logged (gamma 0)" ;;
    esac
    echo "repeat $r/$REPEATS: $label ($(uptime | sed 's/.*load/load/'))" >&2
    "$PY" benchmarks/step.py $RECIPE "${COMMON[@]}" "${extra[@]}" --label "$label" \
      --steps "$STEPS" --warmup 1 --prior-repeats 3 --json 2>/dev/null | grep '^{' >> "$JSONL"
  done
done
"$PY" benchmarks/table.py "$JSONL" | tee "$OUT_DIR/cpu.md"
