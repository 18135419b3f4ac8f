# nat_plugins — see README.md.  Every target sets up .venv first if needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=
SHELL  := /bin/bash

.PHONY: setup test quickstart cuda-check bench clean-venv

setup: $(VENV)/.setup-done

# Re-run setup when the setup script or setup.py changes; the script itself
# is idempotent and skips what is already installed.
$(VENV)/.setup-done: scripts/setup_env.sh setup.py
	set -o pipefail; PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup_env.sh 2>&1 | { grep -v "^WARNING: Location" || true; }
	touch $@

test: setup
	bash scripts/check_cuda_compile.sh
	$(PY) -m pytest -q tests $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

quickstart: setup
	PY=$(PY) bash examples/quickstart/run.sh

clean-venv:
	rm -rf $(VENV)
