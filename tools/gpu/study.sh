#!/bin/bash
# One gpu_study.py run on SmolLM2-135M in the prepared environment; records come back as $OUT/records.tar.gz.
set -uo pipefail
. "$(dirname "$0")/env.sh" "$1"
mkdir -p /tmp/gpu/results && cp -rn results/SmolLM2-135M /tmp/gpu/results/ 2>/dev/null  # the committed records: resumed, not recomputed
[ -f /tmp/gpu/records.tar.gz ] && tar -xzf /tmp/gpu/records.tar.gz -C /tmp/gpu --skip-old-files 2>/dev/null
python3 tools/gpu_study.py --model SmolLM2-135M --out /tmp/gpu/results --commit $1 --budget-s $2 --plan $3 "${@:4}" 2>&1 | grep -v "Loading weights" | tail -60
cp /tmp/gpu/records.tar.gz $OUT/records.tar.gz; cp /tmp/gpu/results/gpu_study.log $OUT/ 2>/dev/null; ls -la $OUT
