#!/usr/bin/env bash
# Average checkpoints as each paper does, translate newstest2014 with each
# paper's decoding settings and score: tokenized compound-split BLEU (the
# NAT papers' number) and sacreBLEU with its signature (scripts/evaluation/score.py).
#
#   bash examples/wmt14_en_de/evaluate.sh                      # every trained model, raw data
#   MODELS="cmlm dat" DATA=distill bash examples/wmt14_en_de/evaluate.sh
#   bash examples/wmt14_en_de/evaluate.sh --dry-run
#
# Per model (run folder runs/wmt14_en_de/MODEL_DATA, from train_MODEL.sh):
#   cmlm              average the 5 best (validation loss); mask-predict,
#                     10 iterations, 5 length candidates
#   sundae            average the last 10; n = 16 samples reranked by model
#                     score: argmax-unrolled T = 4 (rho = RHO) and
#                     low-temperature sampling T = 10 (tau = TEMPERATURE)
#   dat               average the 5 best (validation BLEU); lookahead
#                     (beta 1) and joint-Viterbi (beta = VITERBI_BETA)
#   diffglat,         average the 5 best (validation BLEU); joint-Viterbi
#   diffglat_noniter  with 1 and with 3 iterations
# Models without checkpoints are skipped (an error when named in MODELS).
# Outputs per model: averaged.pt, test.SETTING.out (fairseq-generate output),
# test.SETTING.json (scores); all results: runs/wmt14_en_de/results_DATA.md.
# Every step is skipped when its output is newer than its input.  The
# fairseq-generate commands are printed; averaging, decoding and scoring
# run in one process (scripts/evaluation/decode_and_score.py: one fairseq start-up
# instead of one per step).
#
# Environment: MODELS, DATA (raw|distill), RHO (0.3), TEMPERATURE (0.5),
# VITERBI_BETA (0.1), GEN_BATCH (sentences per batch, 64), NGPUS (0: CPU;
# decoding uses one GPU), PRECISION, WORKDIR, PY.
set -euo pipefail
RECIPE=wmt14/evaluate
# shellcheck source=examples/wmt14_en_de/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_recipe_args "$@"

ALL_MODELS="cmlm sundae dat diffglat diffglat_noniter"
MODELS=${MODELS:-$ALL_MODELS}
RHO=${RHO:-0.3}
TEMPERATURE=${TEMPERATURE:-0.5}
VITERBI_BETA=${VITERBI_BETA:-0.1}
GEN_BATCH=${GEN_BATCH:-64}
RAW_REF=$DATA_DIR/raw/test.de
# DA-Transformer and DiffGLAT are trained on sources of at most 128 tokens
# (learned positions): longer test sources are truncated, and counted below.
MAX_DAG_SOURCE=128

# averaging MODEL: "last N" or "best N"
averaging() {
  case $1 in
    sundae) echo "last $(by_mode 10 2)" ;;
    *) echo "best $(by_mode 5 2)" ;;
  esac
}

# settings MODEL: one "NAME|fairseq-generate flags" line per decoding setting
settings() {
  case $1 in
    cmlm) echo "mask_predict_T10_len5|--decoding-strategy mask_predict --decode-iterations 10 --length-beam 5" ;;
    sundae)
      echo "argmax_unrolled_T4_n16|--decoding-strategy sundae_argmax_unrolled --decode-iterations 4" \
        "--decode-samples 16 --argmax-unrolled-rho $RHO --decode-seed 1"
      echo "sample_T10_n16|--decoding-strategy sundae_sample --decode-iterations 10 --decode-samples 16" \
        "--decode-temperature $TEMPERATURE --decode-seed 1"
      ;;
    dat)
      echo "lookahead|--decoding-strategy dag_lookahead --decode-beta 1.0"
      echo "joint_viterbi|--decoding-strategy dag_joint_viterbi --decode-viterbi-beta $VITERBI_BETA"
      ;;
    diffglat | diffglat_noniter)
      echo "joint_viterbi_I1|--decoding-strategy dag_joint_viterbi --decode-iterations 1 --decode-viterbi-beta $VITERBI_BETA"
      echo "joint_viterbi_I3|--decoding-strategy dag_joint_viterbi --decode-iterations 3 --decode-viterbi-beta $VITERBI_BETA"
      ;;
    *) die "unknown model '$1' (known: $ALL_MODELS)" ;;
  esac
}

model_flags() {
  case $1 in
    dat | diffglat*) echo "--max-source-positions $MAX_DAG_SOURCE --truncate-source" ;;
  esac
}

select_models() {
  local model dir
  SELECTED=()
  for model in $MODELS; do
    settings "$model" >/dev/null
    dir=$RUNS/${model}_$DATA/checkpoints
    if compgen -G "$dir/checkpoint*.pt" >/dev/null; then
      SELECTED+=("$model")
    elif [ "$MODELS" = "$ALL_MODELS" ]; then
      log "skipping $model: no checkpoints in $dir"
    else
      die "$model: no checkpoints in $dir (run train_${model%_noniter}.sh first)"
    fi
  done
  ((${#SELECTED[@]})) || die "no trained model on $DATA data under $RUNS"
}

# generate_args MODEL SETTING_FLAGS: the fairseq-generate arguments of one job
generate_args() {
  local model=$1 device=() extra=()
  if ((NGPUS == 0)); then device=(--cpu); elif [ "$PRECISION" = fp16 ]; then device=(--fp16); fi
  read -ra extra <<<"$(model_flags "$model") $2"
  # --required-batch-size-multiple 1: fairseq's default of 8 drops the test set's tail
  printf '%q ' "$DATA_BIN" --user-dir "$USER_DIR" --task nat_translation --path "$RUNS/${model}_$DATA/averaged.pt" \
    --gen-subset test --batch-size "$GEN_BATCH" --required-batch-size-multiple 1 --remove-bpe "${device[@]}" "${extra[@]}"
}

[ -s "$RAW_REF" ] || die "no reference $RAW_REF: run prepare.sh$(by_mode '' ' --dry-run') first"
select_models
long=$(awk -v max="$MAX_DAG_SOURCE" 'NF + 1 > max' "$DATA_DIR/bpe/test.en" | wc -l)
# Averaging each model, then every setting of every model (one fairseq-generate
# command each), then scoring each output: all in one process
# (scripts/evaluation/decode_and_score.py), which pays fairseq's start-up once.
jobs=()
for model in "${SELECTED[@]}"; do
  read -r mode count <<<"$(averaging "$model")"
  jobs+=(--average "$mode" "$count" "$RUNS/${model}_$DATA/checkpoints" "$RUNS/${model}_$DATA/averaged.pt")
  if [ -n "$(model_flags "$model")" ] && ((long > 0)); then
    log "$model: $long test source(s) longer than $MAX_DAG_SOURCE tokens (with <eos>) are truncated"
  fi
  while IFS='|' read -r name flags; do
    jobs+=(--job "$model" "$name" "$RUNS/${model}_$DATA/test.$name" "$(generate_args "$model" "$flags")")
  done < <(settings "$model")
done
"$PY" "$SCRIPTS/evaluation/decode_and_score.py" "${jobs[@]}" --raw-ref "$RAW_REF" --lang de \
  --expect-sentences "$(line_count "$RAW_REF")" --report "$RUNS/results_$DATA.md" \
  --title "WMT14 En-De newstest2014, $DATA training data"
log "results: $RUNS/results_$DATA.md"
