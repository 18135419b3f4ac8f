#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv) without ever
# pulling a second torch.  Idempotent: every step is skipped when satisfied.
#
#   VENV=.venv PYTHON=python3 scripts/setup_env.sh
#
# Why these steps (see README "Installation"):
#  * torch: a torch already importable by $PYTHON (e.g. a user's CUDA build)
#    is reused through --system-site-packages; otherwise torch==2.13.0 is
#    installed (the CPU wheel on the project's build machines).
#  * fairseq: upstream fairseq 0.12.2 does not build/import on Python 3.11,
#    so we use the fairseq-fixed fork, built against *this* torch
#    (--no-build-isolation) and without its metadata dependencies
#    (--no-deps), which would drag in torchaudio and a second torch.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
FAIRSEQ_SPEC=${FAIRSEQ_SPEC:-fairseq-fixed==0.12.3.1}

log() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  if "$PYTHON" -c 'import torch' 2>/dev/null; then
    log "reusing the torch of $PYTHON ($("$PYTHON" -c 'import torch;print(torch.__version__)')): venv with --system-site-packages"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY="$(cd "$VENV" && pwd)/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

if "$PY" -c 'import torch' 2>/dev/null; then
  log "torch $("$PY" -c 'import torch;print(torch.__version__)') present: kept"
else
  log "installing $TORCH_SPEC"
  "${PIP[@]}" "$TORCH_SPEC"
fi

# fairseq-fixed's real runtime needs, bounded as seen working (REFERENCE §1),
# plus the project's own.  Nothing here depends on torch.
"${PIP[@]}" "numpy>=1.24,<3" "cython>=3,<4" cffi "hydra-core>=1.3.2,<1.4" \
  "omegaconf>=2.3,<2.4" regex "sacrebleu>=2.3,<3" "tqdm>=4" "bitarray>=2" \
  "scikit-learn>=1" packaging \
  "sacremoses>=0.0.53" "subword-nmt>=0.3.8,<0.4" "pytest>=7" "matplotlib>=3.7" \
  setuptools wheel

if "$PY" -c 'import fairseq' 2>/dev/null; then
  log "fairseq $("$PY" -c 'import fairseq;print(fairseq.__version__)') present: kept"
else
  log "building $FAIRSEQ_SPEC against the installed torch (about 3 minutes)"
  "${PIP[@]}" --no-build-isolation --no-deps "$FAIRSEQ_SPEC"
fi

# Checked from / so the checkout itself on sys.path cannot fake an install.
here=$(pwd)
if ! (cd / && "$PY" -c 'import nat_plugins, sys; sys.exit(0 if nat_plugins.__file__.startswith(sys.argv[1]) else 1)' "$here") 2>/dev/null; then
  log "installing nat_plugins (editable)"
  "${PIP[@]}" --no-build-isolation --no-deps -e .
fi
# Guard: the one thing this script promises never to do.
n=$("$PY" -m pip list 2>/dev/null | grep -ciE '^(torch|torchaudio|nvidia-)' || true)
[ "$n" -le 1 ] || { echo "[setup] error: more than one torch-like package installed:" >&2; "$PY" -m pip list | grep -iE '^(torch|nvidia-)' >&2; exit 1; }
log "ready: $("$PY" -c 'import torch, fairseq; print("torch", torch.__version__, "fairseq", fairseq.__version__)')"
