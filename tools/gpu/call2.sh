#!/bin/bash
# GPU call 2 of 3 (carry .gpu/b .gpu/data1): join and check SmolLM2's GGUF, install the wheels, convert it, put the
# offline corpora in /tmp/gpu/data, then the headline studies. Usage: bash tools/gpu/call2.sh <commit> <budget_s> <plan>
set -uo pipefail
C=$1; BUDGET=$2; PLAN=$3
bash .gpu/b/setup.sh || exit 3
mkdir -p /tmp/gpu/data && cp -r .gpu/data1/* /tmp/gpu/data/
bash tools/gpu/study.sh $C $BUDGET $PLAN
