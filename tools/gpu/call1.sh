#!/bin/bash
# GPU call 1 of 4 (carry .gpu/p1): stash GGUF part 0 and the corpora outside the checkout, install
# fastcore into /tmp/site (lm_eval comes with call 3), then the pruning-speed benchmark (issue 12; budget 0 skips it),
# then, with a third argument `tests`, tests/test_gpu.py in this environment (from a shell of its own it lacks
# /tmp/site's fastcore). Usage: bash tools/gpu/call1.sh <commit> [budget_s] [tests]
set -uo pipefail
mkdir -p /tmp/gpu/data && cp .gpu/p1/gg.part0 /tmp/gpu/ && cp -r .gpu/p1/data/* /tmp/gpu/data/
echo "37e18facae7798c923d3304f386e0664f81917c8e948ca245b04bac8dcc3458a  /tmp/gpu/gg.part0" | sha256sum -c || exit 3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/p1/whl/*.whl || exit 3
. "$(dirname "$0")/env.sh" "$1"
nvidia-smi -L; mkdir -p $OUT/prune
[ "${2:-300}" = 0 ] || timeout $(( ${2:-300} + 40 )) python3 benchmarks/prune_speed.py --commit $1 --out $OUT/prune --budget ${2:-300} 2>&1 | tail -45
[ "${3:-}" = tests ] && { timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -8; }
ls -la $OUT/*
