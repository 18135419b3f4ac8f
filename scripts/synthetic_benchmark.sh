#!/usr/bin/env bash
# The synthetic multimodality benchmark of DiffGLAT (Appendix A, Tables 1-2):
# AR Transformer, vanilla NAT (CMLM decoded in one pass), DA-Transformer and
# DiffGLAT, all the same size and trained for the same number of updates, then
# token / sequence accuracy against the closest of the four targets.
#
#   bash scripts/synthetic_benchmark.sh     # CPU scale (defaults below): ~2 h on 2 cores, see "Cost"
#   NUM_TOKENS=5000 SCALE=1 LAYERS=4 MAX_TOKENS=4096 BUDGET_UPDATES=20000 bash scripts/synthetic_benchmark.sh
#       the paper's data and depth, for a GPU (the paper gives no update count)
#   BUDGET_UPDATES=10 SCALE=0.005 REPORT=/tmp/s.md RUN_DIR=/tmp/s DATA_RAW=/tmp/s/raw DATA_BIN=/tmp/s/bin \
#     bash scripts/synthetic_benchmark.sh  # smoke test
#
# Stages (each cached: data with the same settings, a model trained with the
# same command on the same data, a decoding with the same command):
#   1. scripts/synthetic_multimodality.py make-data -> $DATA_RAW, $DATA_BIN
#   2. per model: fairseq-train --max-update $BUDGET_UPDATES (progress lines shown,
#      full log in $RUN_DIR/<model>/train.log)
#   3. per system: fairseq-generate the test split with the last checkpoint,
#      synthetic_multimodality.py evaluate
#   4. synthetic_multimodality.py report -> $REPORT and the JSON beside it
# Models come from examples/quickstart/models.sh (same flags, optimiser and
# CPU size as the quickstart); a model that has not landed (DiffGLAT until
# nat_plugins/models/diffglat.py exists) is skipped with a message.
#
# Cost (measured 2026-12, 2-core AMD EPYC, 1 thread, N=100, MAX_TOKENS=1024): CPU
# seconds per update AR 0.21, CMLM 0.21, DAT 0.95, DiffGLAT 0.97 (during its
# warm-up), so 3000 updates of all four take ~2 h one after the other, plus ~4 min
# of start-ups, data and decoding. The task is learnt slowly: at 800 updates the
# AR model had 44% token accuracy, the CMLM 4%; fewer updates than the default
# leave the table meaningless.
#
# Environment (defaults in brackets):
#   PY              python of the project's venv [.venv/bin/python]
#   BUDGET_UPDATES  training updates per model (--max-update) [3000]
#   NUM_TOKENS      N: source tokens 1..N [100] (paper: 5000)
#   SCALE           multiplies the paper's 100000/5000/5000 pairs [0.1]
#   LENGTH          source length [32]
#   LAYERS          encoder and decoder layers of every model [2] (paper: 4)
#   MAX_TOKENS      target+source tokens per batch, every model [1024] (~31 pairs of length 32)
#   MODELS          comma list among ar,cmlm,dat,diffglat [all four]
#   TRAIN_EXTRA     extra fairseq-train flags for every model (e.g. "--max-tokens 1024") []
#   TRAIN_EXTRA_<model>  extra flags for one model, after TRAIN_EXTRA (e.g. TRAIN_EXTRA_diffglat=
#                   "--diffusion-warmup-updates 500", TRAIN_EXTRA_dat="--upsample-scale 2") []
#   SEED [1], LOG_INTERVAL [25], VALID_EVERY [500] updates between validations
#   NOTE            a remark recorded in the report
#   DATA_RAW DATA_BIN RUN_DIR REPORT   where things go (the JSON goes beside REPORT)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PY=${PY:-.venv/bin/python}
BUDGET_UPDATES=${BUDGET_UPDATES:-3000}
NUM_TOKENS=${NUM_TOKENS:-100}
SCALE=${SCALE:-0.1}
LENGTH=${LENGTH:-32}
LAYERS=${LAYERS:-2}
MAX_TOKENS=${MAX_TOKENS:-1024}
MODELS=${MODELS:-ar,cmlm,dat,diffglat}
TRAIN_EXTRA=${TRAIN_EXTRA:-}
SEED=${SEED:-1}
LOG_INTERVAL=${LOG_INTERVAL:-25}
VALID_EVERY=${VALID_EVERY:-500}
NOTE=${NOTE:-}
DATA_RAW=${DATA_RAW:-data/synthetic_multimodality/raw}
DATA_BIN=${DATA_BIN:-data-bin/synthetic_multimodality}
RUN_DIR=${RUN_DIR:-runs/synthetic_multimodality}
REPORT=${REPORT:-benchmarks/synthetic_multimodality.md}
TOOL=scripts/synthetic_multimodality.py

# shellcheck source=examples/quickstart/models.sh
source examples/quickstart/models.sh
# shellcheck source=examples/quickstart/common.sh
source examples/quickstart/common.sh

log() { printf '\n[synthetic] %s\n' "$*"; }
die() { printf '[synthetic] error: %s\n' "$*" >&2; exit 1; }

[ -x "$PY" ] || command -v "$PY" >/dev/null || die "python '$PY' not found: run 'make setup' or set PY"
[[ $BUDGET_UPDATES =~ ^[1-9][0-9]*$ ]] ||
  die "BUDGET_UPDATES must be a positive number of updates, got '$BUDGET_UPDATES'"
[[ $LAYERS =~ ^[1-9][0-9]*$ ]] || die "LAYERS must be a positive integer, got '$LAYERS'"
[[ $MAX_TOKENS =~ ^[1-9][0-9]*$ ]] || die "MAX_TOKENS must be a positive integer, got '$MAX_TOKENS'"


# One size and batch for every model (the *_small presets and the AR entry are
# 2+2x128; LAYERS deepens all of them alike). MAX_TOKENS overrides the
# quickstart's 4096: on 2 CPU cores the DAG models cost ~5 s per 4096-token update.
SIZE_FLAGS=(--encoder-layers "$LAYERS" --decoder-layers "$LAYERS" --encoder-embed-dim 128 --decoder-embed-dim 128
  --encoder-ffn-embed-dim 512 --decoder-ffn-embed-dim 512 --encoder-attention-heads 4 --decoder-attention-heads 4
  --max-tokens "$MAX_TOKENS")

# Systems = a trained model + a decoding, in report order.
# SYSTEM[label]="model|paper row|description" (paper row: a key of the tool's
# PAPER_RESULTS, or -); GEN_<label>: the fairseq-generate flags.
SYSTEMS=(ar cmlm_1 cmlm_10 dat_lookahead dat_viterbi diffglat_1 diffglat_3)
declare -A SYSTEM=(
  [ar]="ar|ar|AR Transformer, beam 4"
  [cmlm_1]="cmlm|vanilla|vanilla NAT: CMLM, 1 pass"
  [cmlm_10]="cmlm|-|CMLM, 10 mask-predict iterations, 3 lengths"
  [dat_lookahead]="dat|-|DA-Transformer, lookahead"
  [dat_viterbi]="dat|-|DA-Transformer, joint-Viterbi"
  [diffglat_1]="diffglat|pml|DiffGLAT, 1 iteration, joint-Viterbi"
  [diffglat_3]="diffglat|pml|DiffGLAT, 3 iterations, joint-Viterbi"
)
# shellcheck disable=SC2034  # read through a nameref in evaluate_system
{
  GEN_ar=("${MODEL_ar_GEN[@]}")
  GEN_cmlm_1=(--task nat_translation --decode-iterations 1 --length-beam 1)
  GEN_cmlm_10=(--task nat_translation --decode-iterations 10 --length-beam 3)
  GEN_dat_lookahead=(--task nat_translation --decoding-strategy dag_lookahead --decode-beta 1.0)
  GEN_dat_viterbi=(--task nat_translation --decoding-strategy dag_joint_viterbi --decode-viterbi-beta 1.0)
  GEN_diffglat_1=(--task nat_translation --decoding-strategy dag_joint_viterbi --decode-viterbi-beta 1.0
    --decode-iterations 1)
  GEN_diffglat_3=(--task nat_translation --decoding-strategy dag_joint_viterbi --decode-viterbi-beta 1.0
    --decode-iterations 3)
}

select_models() {
  local requested name requires
  IFS=', ' read -ra requested <<<"$MODELS"
  SELECTED=()
  SKIPPED=()
  for name in "${requested[@]}"; do
    declare -p "MODEL_${name}_TRAIN" >/dev/null 2>&1 || die "unknown model '$name' (known: ar cmlm dat diffglat)"
    if model_landed "$name"; then
      SELECTED+=("$name")
    else
      requires="MODEL_${name}_REQUIRES"
      log "skipping '$name': not landed yet (no ${!requires})"
      SKIPPED+=("$name: not landed yet (no ${!requires})")
    fi
  done
  [ "${#SELECTED[@]}" -gt 0 ] || die "no model to run"
}

make_data() {
  log "data: N=$NUM_TOKENS, length $LENGTH, scale $SCALE of 100000/5000/5000 pairs -> $DATA_BIN"
  "$PY" "$TOOL" make-data --raw-dir "$DATA_RAW" --dest-dir "$DATA_BIN" --num-tokens "$NUM_TOKENS" \
    --length "$LENGTH" --scale "$SCALE" --seed "$SEED" --quiet
}

# True when $1.done exists and $1.command holds the key $2; else removes
# $1.done and records $2 (the caller touches $1.done once the step succeeded).
cached() {
  if [ -e "$1.done" ] && [ "$(cat "$1.command" 2>/dev/null)" = "$2" ]; then return 0; fi
  rm -f "$1.done"
  printf '%s' "$2" >"$1.command"
  return 1
}

train_model() {
  local name=$1 dir=$RUN_DIR/$1 extra=() model_extra=()
  local -n train_flags="MODEL_${name}_TRAIN"
  local model_extra_var="TRAIN_EXTRA_${name}"
  read -ra extra <<<"$TRAIN_EXTRA"
  read -ra model_extra <<<"${!model_extra_var:-}"
  # validation every VALID_EVERY updates and one save at the end: epochs are short
  # later flags win: the model's entry < shared settings < size < TRAIN_EXTRA < TRAIN_EXTRA_<model>
  local command=("$PY" -m fairseq_cli.train "$DATA_BIN" "${train_flags[@]}" "${COMMON_TRAIN[@]}" "${SIZE_FLAGS[@]}"
    "${extra[@]}" "${model_extra[@]}"
    --max-update "$BUDGET_UPDATES" --save-dir "$dir/checkpoints" --no-epoch-checkpoints
    --validate-interval 1000000 --validate-interval-updates "$VALID_EVERY"
    --save-interval 1000000
    --seed "$SEED" --num-workers 0 --log-format simple --log-interval "$LOG_INTERVAL")
  mkdir -p "$dir"
  # the key holds the data's settings too: same command, other data -> retrain
  if cached "$dir/train" "${command[*]} :: $(cat "$DATA_RAW/meta.json")"; then
    log "$name: already trained with the same command and data, kept ($dir)"
    return
  fi
  rm -rf "$dir/checkpoints" "$dir"/*.generate.* "$dir"/*.eval.*
  log "$name: training $BUDGET_UPDATES updates (log: $dir/train.log)"
  "${command[@]}" 2>&1 | tee "$dir/train.log" | show_progress
  touch "$dir/train.done"
}

evaluate_system() {
  local label=$1 model=$2
  local -n gen_flags="GEN_${label}"
  local dir=$RUN_DIR/$model
  local out=$dir/$label.generate.out
  local command=("$PY" -m fairseq_cli.generate "$DATA_BIN" --path "$dir/checkpoints/checkpoint_last.pt"
    --gen-subset test "${COMMON_GEN[@]}" "${gen_flags[@]}")
  if cached "$dir/$label.generate" "${command[*]}"; then
    log "$label: decoded with the same command, kept"
  else
    log "$label: decoding the test split"
    "${command[@]}" >"$out" 2>&1 ||
      { tail -n 20 "$out" >&2; die "$label: fairseq-generate failed (log: $out)"; }
    grep -h "Translated" "$out" | sed 's/^.*| INFO | [^|]*| /  /' || true
    "$PY" "$TOOL" evaluate "$out" --raw-dir "$DATA_RAW" --json-out "$dir/$label.eval.json" | sed 's/^/  /'
    touch "$dir/$label.generate.done"
  fi
}

# The command line that reproduces this run, settings included.
recorded_command() {
  local var
  for var in BUDGET_UPDATES NUM_TOKENS SCALE LENGTH LAYERS MAX_TOKENS MODELS SEED TRAIN_EXTRA "${!TRAIN_EXTRA_@}"; do
    case ${!var:-} in
      "") ;;
      *[!A-Za-z0-9_.,:/+-]*) printf "%s='%s' " "$var" "${!var}" ;;
      *) printf '%s=%s ' "$var" "${!var}" ;;
    esac
  done
  printf 'bash scripts/synthetic_benchmark.sh'
}

# "; TRAIN_EXTRA: ...; TRAIN_EXTRA_dat: ..." for the report, or nothing
extra_flags_note() {
  local name var
  [ -z "$TRAIN_EXTRA" ] || printf '; TRAIN_EXTRA: %s' "$TRAIN_EXTRA"
  for name in "${SELECTED[@]}"; do
    var="TRAIN_EXTRA_${name}"
    [ -z "${!var:-}" ] || printf '; %s: %s' "$var" "${!var}"
  done
}

main() {
  select_models
  local start=$SECONDS name label model paper desc size rows=() skipped=()
  log "models: ${SELECTED[*]}; $BUDGET_UPDATES updates each, ${LAYERS}+${LAYERS} layers x 128"
  make_data
  for name in "${SELECTED[@]}"; do
    train_model "$name"
  done
  for label in "${SYSTEMS[@]}"; do
    IFS='|' read -r model paper desc <<<"${SYSTEM[$label]}"
    if [[ " ${SELECTED[*]} " == *" $model "* ]]; then
      evaluate_system "$label" "$model"
      rows+=(--row "$label|$model|$paper|$desc")
    fi
  done
  for name in "${SKIPPED[@]}"; do skipped+=(--skipped "$name"); done
  size="every model ${LAYERS}+${LAYERS} layers x 128, FFN 512, 4 heads, --max-tokens $MAX_TOKENS;"
  size+=" optimiser and per-model flags from examples/quickstart/models.sh$(extra_flags_note)"
  log "results (wall time $(((SECONDS - start) / 60)) min)"
  "$PY" "$TOOL" report --run-dir "$RUN_DIR" --raw-dir "$DATA_RAW" --output "$REPORT" \
    --budget-updates "$BUDGET_UPDATES" ${NOTE:+--note "$NOTE"} "${rows[@]}" "${skipped[@]}" \
    --size "$size" \
    --command "$(recorded_command)"
}

main "$@"
