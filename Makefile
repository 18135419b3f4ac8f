# nat_plugins — see README.md.  Every target sets up .venv first if needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=
SHELL  := /bin/bash

.PHONY: setup test quickstart cuda-check bench reproduce clean-venv gpu-check

setup: $(VENV)/.setup-done

# Re-run setup when the setup script or setup.py changes; the script itself
# is idempotent and skips what is already installed.
$(VENV)/.setup-done: scripts/setup_env.sh setup.py
	set -o pipefail; PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup_env.sh 2>&1 | { grep -v "^WARNING: Location" || true; }
	touch $@

test: setup
	bash scripts/gpu/check_cuda_compile.sh
	$(PY) -m pytest -q tests $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

quickstart: setup
	PY=$(PY) bash examples/quickstart/run.sh

# Speed and quality of every quickstart model against fairseq AR and
# CTranslate2 (scripts/benchmarks/benchmark.py): benchmarks/RESULTS.md, results.json,
# results_bleu_speed.png.  Run `make quickstart MODELS=all` first.
# ctranslate2 and onnxruntime + onnx (the exported fast path, nat_plugins/export)
# are installed here, not by setup: their wheels require numpy, pyyaml,
# protobuf, flatbuffers, sympy, packaging, ml_dtypes (never torch).
# More flags: make bench BENCH_ARGS="--reps 5".
BENCH_DATA ?= data-bin/quickstart
BENCH_REF  ?= data/quickstart/raw/test.de
BENCH_RUNS ?= runs/quickstart
BENCH_ARGS ?=
bench: setup
	@$(PY) -c 'import ctranslate2' 2>/dev/null || { \
	  echo "bench: installing ctranslate2 for the CTranslate2 baseline (requires numpy and pyyaml only, not torch)"; \
	  $(PY) -m pip install -q "ctranslate2>=4.5,<5"; }
	@$(PY) -c 'import onnxruntime, onnx' 2>/dev/null || { \
	  echo "bench: installing onnxruntime and onnx for the exported fast path (they require numpy, protobuf, flatbuffers, sympy, ml_dtypes; not torch)"; \
	  $(PY) -m pip install -q "onnxruntime>=1.17,<2" "onnx>=1.15,<2"; }
	$(PY) scripts/benchmarks/benchmark.py $(BENCH_DATA) --quickstart-runs $(BENCH_RUNS) --raw-ref $(BENCH_REF) \
	  --ctranslate2 on --fast-path on --out benchmarks $(BENCH_ARGS)

# One-run GPU evidence (issue #18): kernels, op benchmarks, five base-size models;
# see benchmarks/gpu/README.md.  On the GPU machine, no venv needed:
#   make gpu-check            (writes $OUT or benchmarks/gpu/run-<date>)
#   make gpu-check GPU_CHECK_ARGS=--dry-run    (CPU, tiny sizes; also run by `make test`)
GPU_CHECK_ARGS ?=
gpu-check:
	bash scripts/gpu/gpu_check.sh $(GPU_CHECK_ARGS)

# The reproduction suite (scripts/experiments/reproduce.py): synthetic multimodality (DiffGLAT App. A) and the
# SUNDAE/CMLM ablations, update budgets, runs resumed from their checkpoints.  The report goes under
# runs/repro/ unless REPRO_REPORT names the committed record (benchmarks/reproduction.md).
REPRO_REPORT ?= runs/repro/reproduction.md
REPRO_JOBS   ?= 2
REPRO_ARGS   ?=
reproduce: setup
	$(PY) scripts/experiments/reproduce.py --jobs $(REPRO_JOBS) --report $(REPRO_REPORT) $(REPRO_ARGS)

clean-venv:
	rm -rf $(VENV)
