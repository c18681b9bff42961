#!/usr/bin/env bash
# The GPU numbers of the performance issue in one command, run from the repository root on a
# CUDA machine:
#
#   bash benchmarks/gpu.sh                    # everything below, about 8-9 minutes on one H100
#   PARTS="step_device step_cpu" bash benchmarks/gpu.sh   # only some parts
#
# Parts, in this order (the most important first, so a run cut short still has them):
#   step_device   experiment 1 (recipes/image_levy2d.yaml, batch 96 x 4 views, bf16) with the
#                 views made on the GPU (views.on=device): toolkit vs plain loop, phases,
#                 prior shares, FLOPs, model FLOP utilisation, projected 800-epoch time (with
#                 one evaluation per epoch and one checkpoint per epoch, as the recipe says)
#   step_cpu      the same with the views made by the loader workers (torchvision, per image)
#   augment       views/s: per-image torchvision (one CPU core), own batched, kornia batched
#   data          loader throughput against the number of workers, CPU and device views
#   step_compile  step_device with trainer.compile=true (plain and toolkit loops)
#   options       plain-loop step time with optim.fused=false and with trainer.channels_last
#
# Data: DATA=folder (class-per-folder train/ and val/), else data/imagenette-160 when it was
# carried into the checkout, else a generated JPEG tree shaped like Imagenette-160
# (benchmarks/make_images.py; the GPU machine cannot see ../shared/data).
# Python packages missing on the machine (omegaconf, kornia) are installed from .whl/ when
# present: make it once beside the checkout with `bash benchmarks/gpu_wheels.sh`.
# Output: everything printed goes to $OUT/gpu.log (else runs/bench/gpu.log), the JSON
# lines to gpu.jsonl beside it.
# Smoke test of this script without a GPU (tiny model, one step each):
#   DEVICE=cpu QUICK=1 EXTRA="data.batch_size=4 encoder.depth=1" bash benchmarks/gpu.sh
set -uo pipefail

OUT_DIR=${OUT:-runs/bench}
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu.log"
: > "$LOG"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}

if ! "$PY" -c "import omegaconf" 2>/dev/null && [ -d .whl ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/levyjepa-site .whl/*.whl || exit 1
  export PYTHONPATH="$PYTHONPATH:/tmp/levyjepa-site"
fi

DATA=${DATA:-}
if [ -z "$DATA" ]; then
  if [ -d data/imagenette-160/train ]; then
    DATA=data/imagenette-160
  else
    DATA=/tmp/levyjepa-images
    [ -d "$DATA/train" ] || "$PY" benchmarks/make_images.py "$DATA" | tee -a "$LOG"
  fi
fi

CORES=$(nproc)
WORKERS=$((CORES > 1 ? CORES - 1 : 1))
RECIPE=recipes/image_levy2d.yaml
DEVICE=${DEVICE:-cuda}
# shellcheck disable=SC2206  # EXTRA is a list of overrides
COMMON=("data.root=$DATA" "log.trackers=[]" "log.pictures=false" "trainer.device=$DEVICE"
        ${EXTRA:-})
PARTS=${PARTS:-"step_device step_cpu augment data step_compile options"}
if [ "${QUICK:-0}" = 1 ]; then
  S=(--steps 1 --warmup 1); B=(--batches 1); A=(--images 2 --repeats 1)
else
  S=(); B=(); A=()
fi

run() {  # run a benchmark, its output to the terminal and the log
  echo "\$ $*" | tee -a "$LOG"
  "$PY" "$@" 2>&1 | tee -a "$LOG"
}

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PY" -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)"
  echo "data: $DATA; cores: $CORES; loader workers: $WORKERS; parts: $PARTS"
} 2>&1 | tee -a "$LOG"

for part in $PARTS; do
  case $part in
    step_device)
      run benchmarks/step.py $RECIPE "${COMMON[@]}" views.on=device data.workers=8 \
        --steps 30 --warmup 5 --epoch-costs "${S[@]}" ;;
    step_cpu)
      run benchmarks/step.py $RECIPE "${COMMON[@]}" data.workers=$WORKERS \
        --steps 20 --warmup 5 "${S[@]}" ;;
    augment)
      run benchmarks/augment.py --device "$DEVICE" --images 96 --views 4 --repeats 10 "${A[@]}" ;;
    data)
      run benchmarks/data.py $RECIPE "${COMMON[@]}" --workers 4 8 $WORKERS --batches 8 "${B[@]}"
      run benchmarks/data.py $RECIPE "${COMMON[@]}" views.on=device \
        --workers 2 4 8 --batches 20 --device "$DEVICE" "${B[@]}" ;;
    step_compile)
      run benchmarks/step.py $RECIPE "${COMMON[@]}" views.on=device data.workers=8 \
        trainer.compile=true --loops plain toolkit --steps 30 --warmup 8 --no-flops "${S[@]}" ;;
    options)
      run benchmarks/step.py $RECIPE "${COMMON[@]}" views.on=device data.workers=8 \
        optim.fused=false --loops plain --steps 20 --warmup 5 --no-flops "${S[@]}"
      run benchmarks/step.py $RECIPE "${COMMON[@]}" views.on=device data.workers=8 \
        trainer.channels_last=true --loops plain --steps 20 --warmup 5 --no-flops "${S[@]}" ;;
    *)
      echo "unknown part '$part'" | tee -a "$LOG" ;;
  esac
done
grep '^{' "$LOG" > "$OUT_DIR/gpu.jsonl" || true
echo "wrote $LOG and $OUT_DIR/gpu.jsonl"
