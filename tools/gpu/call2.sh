#!/bin/bash
# GPU call 2 of 4 (carry .gpu/p2), on the machine of call 1: stash GGUF part 1, the task data and the other wheels,
# then the inference-speed benchmark (issue 13; budget 0 skips it). Usage: bash tools/gpu/call2.sh <commit> [budget_s] [part ...]
# (parts of benchmarks/infer_speed.py, e.g. `device stories`; default all). Runs of one commit on one machine combine with
# `python benchmarks/infer_speed.py --merge run1.json run2.json --out benchmarks/results` (keep the runs in benchmarks/results/runs/).
set -uo pipefail
[ -f /tmp/gpu/gg.part0 ] || { echo "fresh machine: run call 1 first"; exit 3; }
cp .gpu/p2/gg.part1 /tmp/gpu/ && cp -r .gpu/p2/data/* /tmp/gpu/data/
echo "3b79d767e21c77a1e81fd2731194ef46cc643c59497c699b0d5ea58a163d1cfe  /tmp/gpu/gg.part1" | sha256sum -c || exit 3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/p2/whl/*.whl || exit 3
. "$(dirname "$0")/env.sh" "$1"
mkdir -p $OUT/infer
[ "${2:-200}" = 0 ] || timeout 300 python3 benchmarks/infer_speed.py --commit $1 --out $OUT/infer --budget-s ${2:-200} ${3:+--parts "${@:3}"} 2>&1 | tail -45
ls -la $OUT/*
