#!/usr/bin/env bash
# The speed options on a CPU, for docs/performance.md: experiment 1 with the Lévy
# 2D prior at 4 images x 4 views (as benchmarks/cpu.sh), plain loop, one option at a time, each
# run REPEATS times; the views three ways (augment.py); the loader with views made in the
# worker or on the device, with and without the in-memory cache (data.py).
#
#   bash benchmarks/cpu_options.sh         # about 15-20 minutes on 2 cores, more with COMPILE=1
#
# COMPILE=1 adds trainer.compile=true (inductor builds C++ kernels: minutes on 2 cores).
# Output: $OUT (default runs/bench)/cpu_options.jsonl and cpu_options.md.
set -uo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}  # see benchmarks/cpu.sh
PY=${PYTHON:-.venv/bin/python}
DATA=${DATA:-../shared/data/imagenette-160}
OUT_DIR=${OUT:-runs/bench}
REPEATS=${REPEATS:-2}
STEPS=${STEPS:-3}
mkdir -p "$OUT_DIR"
JSONL="$OUT_DIR/cpu_options.jsonl"
MD="$OUT_DIR/cpu_options.md"
: > "$JSONL"
: > "$MD"
RECIPE=recipes/image_levy2d.yaml
COMMON=("data.root=$DATA" data.batch_size=4 data.workers=0 "log.trackers=[]" log.pictures=false
        trainer.device=cpu priors.within.weight=1.0)

step() {  # label, then overrides and step.py options
  local label=$1
  shift
  echo "$label ($(uptime | sed 's/.*load/load/'))" >&2
  "$PY" benchmarks/step.py $RECIPE "${COMMON[@]}" "$@" --label "$label" --steps "$STEPS" \
    --warmup 1 --prior-repeats 1 --no-flops --json 2>/dev/null | grep '^{' >> "$JSONL"
}

for r in $(seq "$REPEATS"); do
  step "defaults (fused AdamW, views by the loader)" --loops plain phases
  step "optim.fused=false" optim.fused=false --loops plain
  step "trainer.channels_last=true" trainer.channels_last=true --loops plain
  step "views.on=device" views.on=device --loops plain phases
done
if [ "${COMPILE:-0}" = 1 ]; then
  step "trainer.compile=true" trainer.compile=true --loops plain
fi
"$PY" benchmarks/table.py "$JSONL" | tee -a "$MD"

keep() {  # a benchmark's output: JSON lines to the .jsonl, the rest (tables) to the .md
  local tmp
  tmp=$(mktemp)
  "$@" > "$tmp" 2>/dev/null
  grep '^{' "$tmp" >> "$JSONL"
  grep -v '^{' "$tmp" | tee -a "$MD"
  rm -f "$tmp"
}
for threads in 1 2; do
  keep "$PY" benchmarks/augment.py --threads $threads --images 16 --views 4 --repeats 5
done
for option in "views.on=cpu" "views.on=device" \
              "views.on=device data.cache=true"; do
  # shellcheck disable=SC2086  # an option may be two overrides
  keep "$PY" benchmarks/data.py $RECIPE "${COMMON[@]}" $option data.batch_size=16 \
    --workers 0 1 --batches 5 --device cpu
done
