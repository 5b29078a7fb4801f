#!/bin/bash
# GPU call 1 of 3 (carry .gpu/a): stash GGUF part 0 and lm-eval's wheel outside the checkout, install fastcore,
# then the speed benchmarks (issues 12, 13), each under its own time budget. Usage: bash tools/gpu/call1.sh <commit>
set -uo pipefail
C=$1
bash .gpu/a/setup.sh || exit 3
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/a/whl/fastcore-*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDA_NB_COMMIT=$C PYTHONUNBUFFERED=1
nvidia-smi -L
mkdir -p $OUT/infer $OUT/prune
timeout 300 python3 benchmarks/infer_speed.py --commit $C --out $OUT/infer --budget-s 200 2>&1 | tail -40
timeout 270 python3 benchmarks/prune_speed.py --commit $C --out $OUT/prune --budget 240 2>&1 | tail -40
ls -la $OUT/*
