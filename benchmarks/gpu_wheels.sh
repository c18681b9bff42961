#!/usr/bin/env bash
# Download, once, the wheels that benchmarks/gpu.sh installs on a GPU machine without internet
# (its image has torch, torchvision, timm, accelerate and the rest, but not omegaconf or kornia).
# They go to .whl/ in the checkout, which is kept out of git (.git/info/exclude), for
# Python 3.12 on x86-64 Linux. Then carry .whl along with the command `bash benchmarks/gpu.sh`.
set -euo pipefail
PY=${PYTHON:-python3}
exclude="$(git rev-parse --git-path info/exclude)"
mkdir -p "$(dirname "$exclude")"
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
mkdir -p .whl
for spec in omegaconf==2.3.0 kornia==0.9.0 kornia-rs==0.2.0; do
  "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .whl "$spec"
done
# omegaconf's parser runtime is published as a source archive only: build its (pure) wheel here
"$PY" -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3
rm -f .whl/*.tar.gz
ls -l .whl
