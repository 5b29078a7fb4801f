#!/bin/bash
# GPU call 3 of 4 (carry .gpu/p3), on the machine of calls 1-2: join SmolLM2's GGUF and check its sha256, install
# lm_eval, check the imports, convert the model once, then the first studies. Usage: bash tools/gpu/call3.sh <commit> <budget_s> <plan>
set -uo pipefail
[ -f /tmp/gpu/gg.part1 ] || { echo "fresh machine: run calls 1 and 2 first"; exit 3; }
G=/tmp/gpu/SmolLM2-135M-Instruct.Q4_1.gguf
cat /tmp/gpu/gg.part0 /tmp/gpu/gg.part1 .gpu/p3/gg.part2 > $G
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $G" | sha256sum -c || exit 3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/p3/whl/*.whl || exit 3
. "$(dirname "$0")/env.sh" "$1"
python3 -c "
import time, torch, lm_eval, datasets, gguf, fastcore
from wanda_nb.models import load_model
t = time.time(); m, tok = load_model('SmolLM2-135M', device='cuda')
ids = tok('The capital of France is', return_tensors='pt').input_ids.cuda()
ans = tok.decode(m.generate(ids, max_new_tokens=2, do_sample=False)[0, ids.shape[1]:])
print(f'SmolLM2 loaded in {time.time() - t:.0f} s; answers {ans!r}'); assert ans == ' Paris.'" 2>&1 | grep -v "Loading weights" || exit 3
bash tools/gpu/study.sh "$@"
