#!/bin/bash
# The recovery study (tools/recovery_gpu.py) on SmolLM2-135M in the environment calls 1-3 prepared; its records and
# learning-rate choices are added to /tmp/gpu/records.tar.gz beside gpu_study's and come back as $OUT/records.tar.gz.
# Usage: bash tools/gpu/recovery.sh <commit> <minutes> <plan> [recovery_gpu.py options, e.g. --limit 0]   (resumes: repeat while the machine is warm until 'done')
set -uo pipefail
[ -f /tmp/gpu/SmolLM2-135M-Instruct.Q4_1.gguf ] || { echo "fresh machine: run calls 1-3 first"; exit 3; }
. "$(dirname "$0")/env.sh" "$1"
R=/tmp/gpu/results/SmolLM2-135M/recovery; mkdir -p $R
cp -rn results/SmolLM2-135M/recovery/. $R/ 2>/dev/null  # the committed records: resumed, not recomputed
python3 tools/recovery_gpu.py --out $R --minutes $2 --plan $3 "${@:4}" 2>&1 | grep -v "Loading weights" | tee /tmp/gpu/results/recovery-$3.log | tail -40
(cd /tmp/gpu && tar -czf records.tar.gz results); cp /tmp/gpu/records.tar.gz $OUT/; ls -la $OUT
