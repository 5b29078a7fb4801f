# The environment every GPU call runs in (sourced by call1-3.sh, study.sh, recovery.sh with the commit as $1): the
# wheels in /tmp/site, the checkout, SmolLM2's joined GGUF, the converted-model cache, the corpora, offline hubs.
export PYTHONPATH=/tmp/site:$PWD WANDA_NB_SMOLLM2_GGUF=/tmp/gpu/SmolLM2-135M-Instruct.Q4_1.gguf WANDA_NB_CACHE=/tmp/gpu/cache \
       WANDA_NB_DATA=/tmp/gpu/data HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDA_NB_COMMIT=$1 PYTHONUNBUFFERED=1
