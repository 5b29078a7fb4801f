#!/bin/bash
# GPU call 3 (carry .gpu/data2), on the machine of call 2: the task data, then more studies (resuming).
# Usage: bash tools/gpu/call3.sh <commit> <budget_s> <plan>
set -uo pipefail
mkdir -p /tmp/gpu/data && cp -r .gpu/data2/* /tmp/gpu/data/
bash tools/gpu/study.sh $1 $2 $3
