#!/usr/bin/env bash
# Quickstart: train the AR baseline and NAT models on an offline En->De corpus
# for a few minutes each on CPU, and print one comparison table.
#
#   bash examples/quickstart/run.sh              # via `make quickstart`
#   BUDGET=10 MODELS=all bash examples/quickstart/run.sh
#
# Stages: build corpus -> prepare data (Moses + joint BPE + binarize) -> for
# each model: train BUDGET minutes -> average the last AVG_LAST checkpoints ->
# generate the test split -> score; then a table of BLEU / chrF / decoding
# speed with 3 example translations, also written to $REPORT.
# Every stage's outputs are kept; re-running skips finished work (the corpus,
# each prepare step, and a model trained with the same command).
#
# Environment (defaults in brackets):
#   PY          python of the project's venv [.venv/bin/python]
#   BUDGET      training minutes per model [5]
#   MODELS      "default" (AR + flagship NAT), "all", or a list like "ar,cmlm" [default]
#   AVG_LAST    checkpoints averaged per model [3]
#   SAVE_EVERY  updates between checkpoints [50]
#   SEED        training seed [1]
#   BPE_MERGES  joint BPE merges [8000]
#   NOTE        a remark recorded in the report (e.g. "machine shared with other jobs")
#   DATA_RAW DATA_WORK DATA_BIN RUN_DIR REPORT   where things go
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

PY=${PY:-.venv/bin/python}
BUDGET=${BUDGET:-5}
MODELS=${MODELS:-default}
AVG_LAST=${AVG_LAST:-3}
SAVE_EVERY=${SAVE_EVERY:-50}
SEED=${SEED:-1}
BPE_MERGES=${BPE_MERGES:-8000}
DATA_RAW=${DATA_RAW:-data/quickstart/raw}
DATA_WORK=${DATA_WORK:-data/quickstart}
DATA_BIN=${DATA_BIN:-data-bin/quickstart}
RUN_DIR=${RUN_DIR:-runs/quickstart}
REPORT=${REPORT:-benchmarks/quickstart.md}

# shellcheck source=examples/quickstart/models.sh
source "$ROOT/examples/quickstart/models.sh"
# shellcheck source=examples/quickstart/common.sh
source "$ROOT/examples/quickstart/common.sh"

log() { printf '\n[quickstart] %s\n' "$*"; }
die() { printf '[quickstart] error: %s\n' "$*" >&2; exit 1; }

[ -x "$PY" ] || command -v "$PY" >/dev/null || die "python '$PY' not found: run 'make setup' or set PY"
"$PY" -c 'import fairseq' 2>/dev/null || die "fairseq is not importable by $PY: run 'make setup'"
[[ $BUDGET =~ ^[0-9]+([.][0-9]+)?$ ]] || die "BUDGET must be a number of minutes, got '$BUDGET'"

select_models() {
  local requested=() name train requires
  case "$MODELS" in
    default) requested=(ar "$FLAGSHIP") ;;
    all) requested=(ar "${NAT_MODELS[@]}") ;;
    *) IFS=', ' read -ra requested <<<"$MODELS" ;;
  esac
  SELECTED=()
  for name in "${requested[@]}"; do
    train="MODEL_${name}_TRAIN"
    requires="MODEL_${name}_REQUIRES"
    declare -p "$train" >/dev/null 2>&1 || die "unknown model '$name' (known: ar ${NAT_MODELS[*]})"
    if model_landed "$name"; then
      SELECTED+=("$name")
    elif [ "$MODELS" = default ] || [ "$MODELS" = all ]; then
      log "skipping '$name': not landed yet (no ${!requires})"
    else
      die "model '$name' has not landed yet (no ${!requires})"
    fi
  done
  [ "${#SELECTED[@]}" -gt 0 ] || die "no model to run"
}

build_corpus() {
  if [ -s "$DATA_RAW/test.de" ] && [ -s "$DATA_RAW/stats.json" ]; then
    log "corpus: $DATA_RAW exists, kept (delete it to rebuild)"
  else
    log "corpus: building $DATA_RAW from the Ding dictionary"
    "$PY" scripts/build_corpus.py --out-dir "$DATA_RAW"
  fi
}

prepare_data() {
  log "data: tokenize, BPE ($BPE_MERGES merges), binarize into $DATA_BIN"
  "$PY" scripts/prepare_data.py --raw-dir "$DATA_RAW" --work-dir "$DATA_WORK" --dest-dir "$DATA_BIN" \
    --bpe-merges "$BPE_MERGES"
}

train_model() {
  local name=$1 dir=$RUN_DIR/$1 hours command_file
  local -n train_flags="MODEL_${name}_TRAIN"
  hours=$(awk -v m="$BUDGET" 'BEGIN { printf "%.6f", m / 60 }')
  local command=("$PY" -m fairseq_cli.train "$DATA_BIN" "${train_flags[@]}" "${COMMON_TRAIN[@]}"
    --save-dir "$dir/checkpoints" --stop-time-hours "$hours"
    --save-interval-updates "$SAVE_EVERY" --keep-interval-updates "$AVG_LAST" --no-epoch-checkpoints
    --seed "$SEED" --num-workers 0 --log-format simple --log-interval 25)
  command_file=$dir/train.command
  if [ -e "$dir/train.done" ] && [ "$(cat "$command_file" 2>/dev/null)" = "${command[*]}" ]; then
    log "$name: already trained with the same command, kept ($dir)"
    return
  fi
  # --stop-time-hours counts the time stored in a checkpoint, so resuming an
  # old run would stop at once: always start fresh.
  rm -rf "$dir"
  mkdir -p "$dir"
  printf '%s' "${command[*]}" >"$command_file"
  log "$name: training for $BUDGET min (log: $dir/train.log)"
  "${command[@]}" 2>&1 | tee "$dir/train.log" | show_progress
  touch "$dir/train.done"
}

average_model() {
  local name=$1 dir=$RUN_DIR/$1
  log "$name: averaging the last $AVG_LAST checkpoints"
  "$PY" scripts/average_checkpoints.py --last "$AVG_LAST" --allow-fewer --dir "$dir/checkpoints" \
    --output "$dir/averaged.pt"
}

generate_model() {
  local name=$1 dir=$RUN_DIR/$1
  local -n gen_flags="MODEL_${name}_GEN"
  log "$name: translating the test split"
  "$PY" -m fairseq_cli.generate "$DATA_BIN" --path "$dir/averaged.pt" --gen-subset test \
    "${COMMON_GEN[@]}" "${gen_flags[@]}" >"$dir/generate.out" 2>&1 ||
    { tail -n 20 "$dir/generate.out" >&2; die "$name: fairseq-generate failed (log: $dir/generate.out)"; }
  grep -h "Translated" "$dir/generate.out" | sed 's/^.*| INFO | [^|]*| /  /' || true
}

score_model() {
  local name=$1 dir=$RUN_DIR/$1
  "$PY" scripts/score.py "$dir/generate.out" --raw-ref "$DATA_RAW/test.de" --lang de --json >"$dir/score.json"
  "$PY" scripts/score.py "$dir/generate.out" --raw-ref "$DATA_RAW/test.de" --lang de | sed 's/^/  /'
}

main() {
  select_models
  local start=$SECONDS name descriptions=()
  log "models: ${SELECTED[*]}; budget $BUDGET min each (about $((${BUDGET%.*} * ${#SELECTED[@]} + 3)) min in all)"
  build_corpus
  prepare_data
  for name in "${SELECTED[@]}"; do
    train_model "$name"
    average_model "$name"
    generate_model "$name"
    score_model "$name"
    local desc="MODEL_${name}_DESC"
    descriptions+=("$name=${!desc}")
  done
  log "results (wall time $(((SECONDS - start) / 60)) min)"
  "$PY" scripts/quickstart_report.py --run-dir "$RUN_DIR" --raw-dir "$DATA_RAW" --output "$REPORT" \
    --budget "$BUDGET" --command "BUDGET=$BUDGET MODELS=$MODELS bash examples/quickstart/run.sh" \
    ${NOTE:+--note "$NOTE"} --models "${descriptions[@]}"
}

main "$@"
