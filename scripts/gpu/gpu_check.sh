#!/usr/bin/env bash
# One-run GPU evidence for nat_plugins (issue #18): kernels built, checked and
# sanitized, DAG ops benchmarked, and base-size AR, CMLM, SUNDAE, DAT and
# DiffGLAT trained, decoded and scored on the quickstart corpus, in at most
# 9 minutes on one H200 with no network.  What it writes: benchmarks/gpu/README.md.
#
# Device command (the `run` tool; everything it needs travels with the tree):
#   command:   bash scripts/gpu/gpu_check.sh
#   carry:     [".whl", "data-bin/quickstart", "data/quickstart/raw/test.de"]
#   timeout_s: 600
# Results land in $OUT (the run tool's output folder), ready to commit under
# benchmarks/gpu/.  Prepare the carried paths on a machine with network:
#   bash scripts/gpu/gpu_check.sh --fetch      (pip download into .whl/: wheels for
#                                           Python 3.12 manylinux, fairseq-fixed sdist)
#   bash examples/quickstart/run.sh stages: scripts/data/build_corpus.py + scripts/data/prepare_data.py
#                                           (see --help of this script)
#
# Usage: scripts/gpu/gpu_check.sh [--dry-run] [--fetch] [--out DIR]
#   --dry-run  the same steps on the CPU with tiny sizes, the current python and
#              no carried wheels: tiny synthetic corpus, CPU shim for the kernels,
#              reference ops for the op benchmark (tests/scripts/test_gpu_check.py)
# Env: PY (python with torch; default python3, or .venv/bin/python in --dry-run),
#      UPDATES_<model> (fixed update counts), BUDGET_S (total seconds, 540),
#      WORK (scratch, default ${TMPDIR:-/tmp}/nat_gpu_check).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
DRY=0
FETCH=0
OUT_DIR=${OUT:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --fetch) FETCH=1 ;;
    --out) OUT_DIR=$2; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

# Carried in .whl/ for the GPU machine: "module requirement" pairs, installed only where
# the module is missing (never torch, numpy, cython: the machine has them).
WHEELS=("hydra hydra-core==1.3.8" "omegaconf omegaconf==2.3.1" "yaml PyYAML" "bitarray bitarray"
        "sacremoses sacremoses" "regex regex" "click click" "joblib joblib" "tqdm tqdm"
        "subword_nmt subword-nmt==0.3.8" "mock mock" "pytest pytest" "iniconfig iniconfig"
        "packaging packaging" "pluggy pluggy" "setuptools setuptools" "wheel wheel" "ninja ninja")
if [ $FETCH = 1 ]; then
  # Wheels for the GPU machine's Python 3.12; antlr4 (omegaconf's grammar runtime) and
  # fairseq-fixed exist only as sdists and are built there.
  PIPD=(python3 -m pip download -d .whl --no-deps)
  [ -x .venv/bin/python ] && PIPD=(.venv/bin/python -m pip download -d .whl --no-deps)
  reqs=()
  for w in "${WHEELS[@]}"; do reqs+=("${w#* }"); done
  "${PIPD[@]}" --python-version 3.12 --implementation cp --only-binary=:all: --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 "${reqs[@]}" &&
  "${PIPD[@]}" --no-binary :all: antlr4-python3-runtime==4.9.3 &&
  "${PIPD[@]}" --no-binary :all: --no-build-isolation fairseq-fixed==0.12.3.1 && du -sh .whl
  exit $?
fi

if [ $DRY = 1 ]; then
  PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
  OUT_DIR=${OUT_DIR:-${TMPDIR:-/tmp}/nat_gpu_check_dry/out}
else
  PY=${PY:-python3}
  OUT_DIR=${OUT_DIR:-benchmarks/gpu/run-$(date -u +%Y%m%d-%H%M)}
fi
WORK=${WORK:-${TMPDIR:-/tmp}/nat_gpu_check$([ $DRY = 1 ] && echo _dry)}
BUDGET_S=${BUDGET_S:-540}
mkdir -p "$OUT_DIR/logs" "$WORK"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
STEPS="$OUT_DIR/steps.tsv"
: >"$STEPS"
START=$SECONDS
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
[ $DRY = 1 ] || export NAT_PLUGINS_CACHE="$WORK/cache"  # the dry run reuses the shim the tests built

log() { printf '[gpu_check %4ds] %s\n' $((SECONDS - START)) "$*"; }
left() { echo $((BUDGET_S - (SECONDS - START))); }
# step NAME CMD...: run, log to $OUT/logs/NAME.log, record status and seconds; never aborts the run.
step() {
  local name=$1 t0=$SECONDS rc
  shift
  log "$name ..."
  "$@" >"$OUT_DIR/logs/$name.log" 2>&1
  rc=$?
  printf '%s\t%s\t%d\n' "$name" "$([ $rc = 0 ] && echo ok || echo "FAILED (exit $rc)")" $((SECONDS - t0)) >>"$STEPS"
  log "$name: $([ $rc = 0 ] && echo ok || echo "FAILED (exit $rc), see logs/$name.log") ($((SECONDS - t0)) s)"
  return $rc
}
skip() { printf '%s\tskipped: %s\t0\n' "$1" "$2" >>"$STEPS"; log "$1: skipped ($2)"; }

DRYFLAG=()
[ $DRY = 1 ] && DRYFLAG=(--dry-run)
step env "$PY" scripts/gpu/gpu_check.py env --out "$OUT_DIR" "${DRYFLAG[@]}"

# ---- 1. what the machine lacks, from the carried wheels (never the network)
FAIRSEQ_BG=""
if [ $DRY = 1 ]; then
  skip install "dry run uses $PY as it is"
else
  # Into a private folder on PYTHONPATH (no venv: the machine's python may lack ensurepip).
  SITE="$WORK/site"
  export PYTHONPATH="$SITE:$PYTHONPATH" PATH="$SITE/bin:$PATH"
  install_wheels() {
    local w missing=()
    for w in "${WHEELS[@]}"; do
      "$PY" -c "import ${w%% *}" 2>/dev/null || missing+=("${w#* }")
    done
    echo "missing: ${missing[*]:-none}"
    PIPI=("$PY" -m pip install --disable-pip-version-check -q --no-index --no-deps --find-links "$ROOT/.whl"
          --target "$SITE")
    if [ ${#missing[@]} -gt 0 ]; then "${PIPI[@]}" "${missing[@]}" || return 1; fi
    "$PY" -c "import antlr4" 2>/dev/null || "${PIPI[@]}" --no-build-isolation antlr4-python3-runtime==4.9.3
  }
  if step install install_wheels; then
    # fairseq-fixed: built as a wheel in the background while the kernels are checked
    # (the build never touches the import path, so nothing imports half a fairseq); no
    # CUDA_HOME, so its optional CUDA extensions are skipped (not used here).
    (env -u CUDA_HOME MAX_JOBS=16 "$PY" -m pip wheel --disable-pip-version-check -q --no-index --no-deps \
      --no-build-isolation -w "$WORK/fairseq_wheel" "$ROOT"/.whl/fairseq_fixed-0.12.3.1.tar.gz \
      >"$OUT_DIR/logs/fairseq_build.log" 2>&1; echo $? >"$WORK/fairseq_build.rc") &
    FAIRSEQ_BG=$!
  fi
fi

# ---- 2. kernels: build + self-check, parity tests, compute-sanitizer
step kernels "$PY" scripts/gpu/gpu_check.py kernels --out "$OUT_DIR" "${DRYFLAG[@]}"
if [ $DRY = 1 ]; then
  # Only the GPU parity tests (they skip on the CPU); the shim tests already ran in `make test`.
  step parity_tests "$PY" -m pytest -q -p no:cacheprovider tests/ops/test_dag_cuda_parity.py
else
  # The CPU-shim tests need g++ builds and ran in CI already.
  step parity_tests "$PY" -m pytest -q -p no:cacheprovider tests/ops --ignore=tests/ops/test_dag_cuda_shim.py -k "not check_ops" \
    --junitxml="$OUT_DIR/parity_tests.xml"
fi
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [ $DRY = 1 ]; then
  step tiny_batch "$PY" scripts/gpu/gpu_check.py tiny --out "$OUT_DIR" --dry-run
  skip memcheck "dry run (no GPU)"
  skip racecheck "dry run (no GPU)"
elif [ -z "$SANITIZER" ]; then
  skip memcheck "compute-sanitizer not found"
  skip racecheck "compute-sanitizer not found"
else
  for tool in memcheck racecheck; do
    step "$tool" "$SANITIZER" --tool "$tool" --error-exitcode 3 --target-processes all \
      "$PY" scripts/gpu/gpu_check.py tiny --out "$OUT_DIR"
  done
fi

# ---- 3. op benchmarks (the three targets of issue #18)
if [ $DRY = 1 ]; then
  step bench_ops "$PY" scripts/benchmarks/bench_dag_ops.py --device gpu --gpu-dry-run --repeats 1 --out "$OUT_DIR/dag_ops"
else
  step bench_ops "$PY" scripts/benchmarks/bench_dag_ops.py --device gpu --repeats 5 --out "$OUT_DIR/dag_ops"
fi

# ---- 4. train, decode, score
if [ $DRY = 1 ]; then
  DATA="$WORK/tiny/bin"
  RAW_REF="$WORK/tiny/raw/test.de"
  make_tiny() {
    [ -s "$DATA/dict.en.txt" ] || "$PY" -c 'import sys; sys.path.insert(0, "tests"); import tiny_data
raw = tiny_data.write_raw(sys.argv[1], splits=(("train", 64), ("valid", 8), ("test", 8)))
tiny_data.binarize(raw, sys.argv[2])' "$WORK/tiny/raw" "$DATA"
  }
  step tiny_corpus make_tiny
  step models "$PY" scripts/gpu/gpu_check.py models --dry-run --out "$OUT_DIR" --data "$DATA" --raw-ref "$RAW_REF" \
    --work "$WORK/models" --updates 2
else
  DATA=data-bin/quickstart
  RAW_REF=data/quickstart/raw/test.de
  if [ -n "$FAIRSEQ_BG" ]; then
    log "waiting for the fairseq build"
    wait "$FAIRSEQ_BG"
    if [ "$(cat "$WORK/fairseq_build.rc" 2>/dev/null)" = 0 ]; then
      step fairseq_install "$PY" -m pip install --disable-pip-version-check -q --no-index --no-deps \
        --target "$SITE" "$WORK"/fairseq_wheel/*.whl
    else
      printf 'fairseq_build\tFAILED\t0\n' >>"$STEPS"
    fi
  fi
  if ! "$PY" -c 'import fairseq' >/dev/null 2>&1; then
    skip models "fairseq not importable (logs/fairseq_build.log)"
  elif [ ! -s "$DATA/dict.en.txt" ] || [ ! -s "$RAW_REF" ]; then
    skip models "no carried corpus ($DATA, $RAW_REF)"
  else
    # Fixed update counts, sized for ~5 minutes in all on an H200 with AMP; each training
    # also has a time fuse, so one slow model cannot take the others' time.
    declare -A UPD=([ar]=${UPDATES_ar:-600} [cmlm]=${UPDATES_cmlm:-600} [sundae]=${UPDATES_sundae:-500}
                    [dat]=${UPDATES_dat:-400} [diffglat]=${UPDATES_diffglat:-300})
    order=(ar cmlm sundae dat diffglat)
    for i in "${!order[@]}"; do
      name=${order[$i]}
      remaining=$(( $(left) - 15 ))
      per=$(( remaining / (${#order[@]} - i) ))
      if [ "$per" -lt 30 ]; then
        skip "model_$name" "budget spent ($(left) s left)"
        continue
      fi
      fuse=$(awk -v s=$((per - 20)) 'BEGIN { printf "%.2f", (s > 10 ? s : 10) / 60 }')
      step "model_$name" "$PY" scripts/gpu/gpu_check.py models --names "$name" --out "$OUT_DIR" --data "$DATA" \
        --raw-ref "$RAW_REF" --work "$WORK/models" --updates "${UPD[$name]}" --stop-minutes "$fuse"
      rm -rf "$WORK/models/$name/checkpoints"  # disk: base checkpoints are ~250 MB each
    done
  fi
fi

# ---- 5. report
step report "$PY" scripts/gpu/gpu_check.py report --out "$OUT_DIR"
log "done in $((SECONDS - START)) s; results in $OUT_DIR (results.md, results.json, logs/)"
! grep -q $'\tFAILED' "$STEPS"
