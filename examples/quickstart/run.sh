#!/usr/bin/env bash
# Quickstart: train the AR baseline and NAT models on an offline En->De corpus
# for a fixed number of updates each, and print one comparison table.
#
#   bash examples/quickstart/run.sh              # via `make quickstart`
#   MODELS=all UPDATES=1000 bash examples/quickstart/run.sh
#   REPORT=benchmarks/quickstart.md make quickstart   # the committed record
#
# Stages: build corpus -> prepare data (Moses + joint BPE + binarize) -> train
# every model's update budget (JOBS trainings at a time) -> for each model:
# average the last AVG_LAST checkpoints -> generate the test split -> score;
# then a table of BLEU / chrF / decoding speed with 3 example translations and
# learning curves (validation loss at every checkpoint, BLEU at the curve
# checkpoints), written to $REPORT with a PNG.
# Every stage's outputs are kept; re-running skips finished work (the corpus,
# each prepare step, a model trained with the same command, a scored checkpoint).
# A model whose command differs only in its budget (UPDATES, MAX_MINUTES) resumes
# from its checkpoints, so a longer run extends a curve; any other change starts it
# afresh and sets the earlier run aside as <model>.stale-<time> (never deleted).
#
# Budgets are updates (examples/quickstart/models.sh: MODEL_<name>_UPDATES), so the
# result is the same on a busy or a quiet machine; MAX_MINUTES only caps the wall clock.
# DEVICE=auto uses a GPU when torch sees one (GPU mode: base-size models, fp16,
# MODEL_<name>_GPU flags and UPDATES_GPU updates); the report says which mode ran.
#
# Environment (defaults in brackets):
#   PY          python of the project's venv [.venv/bin/python]
#   MODELS      "default" (AR + flagship NAT), "all", or a list like "ar,cmlm" [default]
#   UPDATES     one update budget for every model [each model's own, models.sh]
#   MAX_MINUTES wall-clock safety cap per model (fairseq --stop-time-hours) [30]
#   DEVICE      auto | cpu | gpu [auto]
#   CURVE_EVERY updates between the checkpoints decoded for the BLEU curve [half the budget]
#   AVG_LAST    checkpoints averaged per model [3]
#   SAVE_EVERY  updates between checkpoints (and validations) [50; GPU: 250]
#   SEED        training seed [1]
#   BPE_MERGES  joint BPE merges [8000]
#   JOBS        trainings run at the same time [CPU: 2; GPU: 1]. On CPU a small model
#               trains faster on 1 thread beside another training than alone on 2
#               threads (2-core AMD EPYC: CMLM 1.6 updates/s on 1 thread next to an
#               AR training, 1.19 alone on 2 threads).  Each model keeps its own log
#               ($RUN_DIR/<name>/train.log) and progress lines ("[name] k/N updates,
#               ETA"); if one training fails the others are stopped and the run exits
#               non-zero naming the model and its log; Ctrl-C stops them all (a re-run
#               resumes each from its last checkpoint)
#   THREADS     torch threads per training (OMP_NUM_THREADS, MKL_NUM_THREADS)
#               [cores / JOBS, at least 1]
#   WARM_START  "ar": each NAT model starts from the encoder and token embeddings of
#               this run's AR model (--init-from-ar, ours; the AR trains first, the NAT
#               trainings after it); or the path of an AR checkpoint of the same data-bin
#               (e.g. runs/learning_curves/ar/checkpoints/checkpoint_last.pt: no AR training
#               needed).  Off by default; it changes the NAT's command, so use another
#               RUN_DIR to keep a cold-start run beside it
#   MALLOC_TUNING  on | off [on]: trainings and decodings run with glibc's
#               MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=16 GiB (unless those are set),
#               so the large tensors freed at every update are reused instead of being
#               returned to the OS and page-faulted in again.  Same numbers, less system
#               time: a quickstart training spent ~30% of its CPU in the kernel without it
#               (issue #20: -19% CMLM and -20% DAT training time; peak memory ~+15%)
#   PLAN_ONLY   1: print the mode, JOBS, threads and each model's training command, then stop
#   NOTE        a remark recorded in the report (e.g. "machine shared with other jobs")
#   DATA_RAW DATA_WORK DATA_BIN RUN_DIR   where things go
#   REPORT      the Markdown report [$RUN_DIR/quickstart.md]; the PNG and JSON go beside it
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

PY=${PY:-.venv/bin/python}
MODELS=${MODELS:-default}
UPDATES=${UPDATES:-}
MAX_MINUTES=${MAX_MINUTES:-30}
DEVICE=${DEVICE:-auto}
CURVE_EVERY=${CURVE_EVERY:-}
AVG_LAST=${AVG_LAST:-3}
SAVE_EVERY=${SAVE_EVERY:-}
PLAN_ONLY=${PLAN_ONLY:-}
JOBS=${JOBS:-}
THREADS=${THREADS:-}
WARM_START=${WARM_START:-}
SEED=${SEED:-1}
BPE_MERGES=${BPE_MERGES:-8000}
DATA_RAW=${DATA_RAW:-data/quickstart/raw}
DATA_WORK=${DATA_WORK:-data/quickstart}
DATA_BIN=${DATA_BIN:-data-bin/quickstart}
RUN_DIR=${RUN_DIR:-runs/quickstart}
REPORT=${REPORT:-$RUN_DIR/quickstart.md}

# shellcheck source=examples/quickstart/models.sh
source "$ROOT/examples/quickstart/models.sh"
# shellcheck source=examples/quickstart/common.sh
source "$ROOT/examples/quickstart/common.sh"

log() { printf '\n[quickstart] %s\n' "$*"; }
die() { printf '[quickstart] error: %s\n' "$*" >&2; exit 1; }

[ -x "$PY" ] || command -v "$PY" >/dev/null || die "python '$PY' not found: run 'make setup' or set PY"
"$PY" -c 'import fairseq' 2>/dev/null || die "fairseq is not importable by $PY: run 'make setup'"
[ -z "${BUDGET:-}" ] || die "BUDGET (minutes) is gone: budgets are updates now (UPDATES=N, or each model's in models.sh)"
[ -z "$UPDATES" ] || [[ $UPDATES =~ ^[1-9][0-9]*$ ]] || die "UPDATES must be a positive number of updates, got '$UPDATES'"
[[ $MAX_MINUTES =~ ^[0-9]+([.][0-9]+)?$ ]] || die "MAX_MINUTES must be a number of minutes, got '$MAX_MINUTES'"
[ -z "$CURVE_EVERY" ] || [[ $CURVE_EVERY =~ ^[1-9][0-9]*$ ]] || die "CURVE_EVERY must be a positive number, got '$CURVE_EVERY'"

# MODE (cpu | gpu) from DEVICE; in GPU mode the models' _GPU flags and budgets apply.
case "$DEVICE" in
  cpu) MODE=cpu ;;
  gpu) MODE=gpu ;;
  auto) if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
          MODE=gpu; else MODE=cpu; fi ;;
  *) die "DEVICE must be auto, cpu or gpu, got '$DEVICE'" ;;
esac
SAVE_EVERY=${SAVE_EVERY:-$([ "$MODE" = gpu ] && echo 250 || echo 50)}
[[ $SAVE_EVERY =~ ^[1-9][0-9]*$ ]] || die "SAVE_EVERY must be a positive number, got '$SAVE_EVERY'"
# One GPU is best used by one training at a time; CPU trainings share the cores (see JOBS above).
JOBS=${JOBS:-$([ "$MODE" = gpu ] && echo 1 || echo 2)}
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "JOBS must be a positive number of concurrent trainings, got '$JOBS'"
CORES=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
THREADS=${THREADS:-$(( CORES / JOBS > 0 ? CORES / JOBS : 1 ))}
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive number of threads, got '$THREADS'"
case "${MALLOC_TUNING:-on}" in
  on) export MALLOC_MMAP_MAX_=${MALLOC_MMAP_MAX_-0} MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_-17179869184} ;;
  off) ;;
  *) die "MALLOC_TUNING must be on or off, got '$MALLOC_TUNING'" ;;
esac
case "$WARM_START" in
  ""|none) WARM_START= AR_INIT= ;;
  ar) AR_INIT=$RUN_DIR/ar/checkpoints/checkpoint_last.pt ;;
  *) [ -f "$WARM_START" ] || die "WARM_START must be 'ar' or an AR checkpoint file, got '$WARM_START' (no such file)"
     AR_INIT=$WARM_START ;;
esac

# A training command without its budget (--max-update) and time cap (--stop-time-hours): two commands
# that differ only there train the same recipe, so a larger budget resumes instead of starting afresh.
without_budget() { sed -E 's/ --max-update [0-9]+//; s/ --stop-time-hours [0-9.]+//' <<<"$1"; }

# The update budget of model $1 in this mode.
model_updates() {
  local var="MODEL_${1}_UPDATES"
  if [ -n "$UPDATES" ]; then echo "$UPDATES"
  elif [ "$MODE" = gpu ]; then echo "$UPDATES_GPU"
  else echo "${!var}"; fi
}

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
    "$PY" scripts/data/build_corpus.py --out-dir "$DATA_RAW"
  fi
}

prepare_data() {
  log "data: tokenize, BPE ($BPE_MERGES merges), binarize into $DATA_BIN"
  "$PY" scripts/data/prepare_data.py --raw-dir "$DATA_RAW" --work-dir "$DATA_WORK" --dest-dir "$DATA_BIN" \
    --bpe-merges "$BPE_MERGES"
}

train_model() {
  local name=$1 dir=$RUN_DIR/$1 command_file updates curve
  local train_var="MODEL_${name}_TRAIN" common_var=COMMON_TRAIN device_flags=(--cpu)
  if [ "$MODE" = gpu ]; then
    train_var="MODEL_${name}_GPU" common_var=COMMON_TRAIN_GPU device_flags=()
  fi
  local -n train_flags=$train_var
  local -n common_flags=$common_var
  updates=$(model_updates "$name")
  curve=${CURVE_EVERY:-$(( (updates + 1) / 2 ))}
  local hours
  hours=$(awk -v m="$MAX_MINUTES" 'BEGIN { printf "%.6f", m / 60 }')
  # Interval checkpoints: the last AVG_LAST are kept for averaging, and every multiple of the curve
  # interval for the BLEU curve (--keep-interval-updates-pattern).
  local command=("$PY" -m fairseq_cli.train "$DATA_BIN" "${train_flags[@]}" "${common_flags[@]}" "${device_flags[@]}"
    --save-dir "$dir/checkpoints" --max-update "$updates" --stop-time-hours "$hours"
    --save-interval-updates "$SAVE_EVERY" --keep-interval-updates "$AVG_LAST"
    --keep-interval-updates-pattern "$curve" --no-epoch-checkpoints
    --validate-interval 1000 --validate-interval-updates "$SAVE_EVERY"
    --seed "$SEED" --num-workers 0 --log-format simple --log-interval 25)
  if [ -n "$AR_INIT" ] && [ "$name" != ar ]; then
    command+=(--init-from-ar "$AR_INIT")
  fi
  if [ -n "$PLAN_ONLY" ]; then
    printf '%s: %s updates: OMP_NUM_THREADS=%s MKL_NUM_THREADS=%s %s\n' "$name" "$updates" "$THREADS" "$THREADS" \
      "${command[*]}"
    return
  fi
  command_file=$dir/train.command
  local previous
  previous=$(cat "$command_file" 2>/dev/null || true)
  if [ -e "$dir/train.done" ] && [ "$previous" = "${command[*]}" ]; then
    log "$name: already trained with the same command, kept ($dir)"
    return
  fi
  if [ -n "$previous" ] && [ "$(without_budget "$previous")" = "$(without_budget "${command[*]}")" ]; then
    # only --max-update / the time cap changed: continue from the checkpoints (a longer run extends the curve)
    [ "$previous" = "${command[*]}" ] || log "$name: same recipe with another budget: resuming from $dir"
    rm -f "$dir/train.done"
  elif [ -e "$dir" ]; then
    # another recipe: start afresh, but never destroy a finished or running experiment's evidence
    local aside
    aside=$dir.stale-$(date +%Y%m%d-%H%M%S)
    mv "$dir" "$aside"
    log "$name: the training command changed; the earlier run is set aside as $aside"
  fi
  mkdir -p "$dir"
  printf '%s' "${command[*]}" >"$command_file"
  printf 'JOBS=%s\nTHREADS=%s\nMALLOC_MMAP_MAX_=%s\nMALLOC_TRIM_THRESHOLD_=%s\n' "$JOBS" "$THREADS" \
    "${MALLOC_MMAP_MAX_-}" "${MALLOC_TRIM_THRESHOLD_-}" >"$dir/train.env"  # read by learning_curves.py
  log "$name: training $updates updates ($MODE, $THREADS thread(s); log: $dir/train.log)"
  OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS "${command[@]}" 2>&1 | tee -a "$dir/train.log" |
    "$PY" scripts/experiments/train_progress.py --name "$name" --total "$updates"
  touch "$dir/train.done"
}

# Trainings running in the background: pid -> model name.  Each runs in its own process
# group (set -m), so stopping one stops its whole pipeline (fairseq, tee, progress).
declare -A RUNNING=()

stop_trainings() {
  local pid
  for pid in "${!RUNNING[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${!RUNNING[@]}"; do wait "$pid" 2>/dev/null || true; done
  RUNNING=()
}

on_interrupt() {
  trap - INT TERM
  stop_trainings
  die "interrupted: trainings stopped (a re-run resumes each from its last checkpoint)"
}

# Train models "$@", JOBS at a time; on the first failure stop the others and exit non-zero.
train_models() {
  local queue=("$@") name pid status finished
  trap on_interrupt INT TERM
  set -m
  while [ "${#queue[@]}" -gt 0 ] || [ "${#RUNNING[@]}" -gt 0 ]; do
    while [ "${#queue[@]}" -gt 0 ] && [ "${#RUNNING[@]}" -lt "$JOBS" ]; do
      name=${queue[0]}
      queue=("${queue[@]:1}")
      train_model "$name" </dev/null &
      RUNNING[$!]=$name
    done
    wait -n 2>/dev/null || true  # any training ended (or a signal came: the trap has run)
    for pid in "${!RUNNING[@]}"; do
      kill -0 "$pid" 2>/dev/null && continue
      name=${RUNNING[$pid]}
      status=0
      wait "$pid" || status=$?
      unset "RUNNING[$pid]"
      if [ "$status" -ne 0 ]; then
        finished=$RUN_DIR/$name/train.log
        [ -s "$finished" ] && tail -n 15 "$finished" | sed 's/^/  | /' >&2
        stop_trainings
        set +m
        trap - INT TERM
        die "training of model '$name' failed (exit $status); its log: $finished"
      fi
    done
  done
  set +m
  trap - INT TERM
}

# BLEU of each kept curve checkpoint (not averaged): the learning curve's points.
curve_model() {
  local name=$1 dir=$RUN_DIR/$1 ckpt step
  local -n gen_flags="MODEL_${name}_GEN"
  mkdir -p "$dir/curve"
  # checkpoint_last.pt is the final point: fairseq writes no interval checkpoint at an update that
  # ends an epoch (it writes the epoch checkpoint, which --no-epoch-checkpoints suppresses)
  local final curve
  final=$(grep -o 'num_updates[ =][0-9]*' "$dir/train.log" | tail -1 | grep -o '[0-9]*$' || true)
  # only the curve points (and the final one): the checkpoints kept for averaging are not decoded,
  # which would cost a test-split decoding each (~35 s for CMLM on one core)
  curve=${CURVE_EVERY:-$(( ($(model_updates "$name") + 1) / 2 ))}
  for ckpt in "$dir"/checkpoints/checkpoint_*_*.pt "$dir/checkpoints/checkpoint_last.pt"; do
    [ -e "$ckpt" ] || continue
    step=${ckpt##*_}; step=${step%.pt}
    [ "$step" = last ] && step=$final
    [ -n "$step" ] || continue
    [ "$step" = "$final" ] || [ $(( step % curve )) -eq 0 ] || continue
    [ -s "$dir/curve/$step.json" ] && continue
    "$PY" -m fairseq_cli.generate "$DATA_BIN" --path "$ckpt" --gen-subset test \
      "${COMMON_GEN[@]}" "${gen_flags[@]}" ${CPU_GEN:+--cpu} >"$dir/curve/$step.out" 2>&1 ||
      { tail -n 20 "$dir/curve/$step.out" >&2; die "$name: fairseq-generate failed on $ckpt"; }
    "$PY" scripts/evaluation/score.py "$dir/curve/$step.out" --raw-ref "$DATA_RAW/test.de" --lang de --json \
      >"$dir/curve/$step.json.part" && mv "$dir/curve/$step.json.part" "$dir/curve/$step.json"
    log "$name: BLEU at $step updates: $("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["bleu_tok"])' "$dir/curve/$step.json")"
  done
}

average_model() {
  local name=$1 dir=$RUN_DIR/$1
  log "$name: averaging the last $AVG_LAST checkpoints"
  "$PY" scripts/evaluation/average_checkpoints.py --last "$AVG_LAST" --allow-fewer --dir "$dir/checkpoints" \
    --output "$dir/averaged.pt"
}

generate_model() {
  local name=$1 dir=$RUN_DIR/$1
  local -n gen_flags="MODEL_${name}_GEN"
  log "$name: translating the test split"
  "$PY" -m fairseq_cli.generate "$DATA_BIN" --path "$dir/averaged.pt" --gen-subset test \
    "${COMMON_GEN[@]}" "${gen_flags[@]}" ${CPU_GEN:+--cpu} >"$dir/generate.out" 2>&1 ||
    { tail -n 20 "$dir/generate.out" >&2; die "$name: fairseq-generate failed (log: $dir/generate.out)"; }
  grep -h "Translated" "$dir/generate.out" | sed 's/^.*| INFO | [^|]*| /  /' || true
}

score_model() {
  local name=$1 dir=$RUN_DIR/$1
  "$PY" scripts/evaluation/score.py "$dir/generate.out" --raw-ref "$DATA_RAW/test.de" --lang de --json >"$dir/score.json"
  "$PY" scripts/evaluation/score.py "$dir/generate.out" --raw-ref "$DATA_RAW/test.de" --lang de | sed 's/^/  /'
}

main() {
  select_models
  [ "$MODE" = cpu ] && CPU_GEN=1 || CPU_GEN=
  local start=$SECONDS name descriptions=() plan=() nat=()
  for name in "${SELECTED[@]}"; do plan+=("$name $(model_updates "$name")"); done
  log "mode: $MODE; models and update budgets: ${plan[*]}"
  local setup="trainings: JOBS=$JOBS at a time, $THREADS torch thread(s) each, malloc tuning ${MALLOC_TUNING:-on}"
  log "$setup${AR_INIT:+; NAT encoders warm-started from $AR_INIT}"
  if [ "$WARM_START" = ar ]; then
    [[ " ${SELECTED[*]} " == *" ar "* ]] || die "WARM_START=ar needs the AR model in MODELS (it is trained first)"
    for name in "${SELECTED[@]}"; do [ "$name" = ar ] || nat+=("$name"); done
  fi
  if [ -n "$PLAN_ONLY" ]; then
    for name in "${SELECTED[@]}"; do train_model "$name"; done
    return
  fi
  build_corpus
  prepare_data
  if [ "$WARM_START" = ar ]; then
    train_models ar
    train_models "${nat[@]}"
  else
    train_models "${SELECTED[@]}"
  fi
  for name in "${SELECTED[@]}"; do
    average_model "$name"
    generate_model "$name"
    score_model "$name"
    curve_model "$name"
    local desc="MODEL_${name}_DESC" warm=
    if [ -n "$AR_INIT" ] && [ "$name" != ar ]; then
      warm=", encoder warm-started from $([ "$WARM_START" = ar ] && echo "the AR" || echo "$AR_INIT")"
    fi
    descriptions+=("$name=${!desc}$warm")
  done
  log "results (wall time $(((SECONDS - start) / 60)) min)"
  local recorded="MODELS=$MODELS${UPDATES:+ UPDATES=$UPDATES} DEVICE=$DEVICE JOBS=$JOBS"
  recorded+="${WARM_START:+ WARM_START=$WARM_START} bash examples/quickstart/run.sh"
  "$PY" scripts/experiments/quickstart_report.py --run-dir "$RUN_DIR" --raw-dir "$DATA_RAW" --output "$REPORT" \
    --mode "$MODE" --command "$recorded" \
    ${NOTE:+--note "$NOTE"} --models "${descriptions[@]}"
}

main "$@"
