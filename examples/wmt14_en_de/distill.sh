#!/usr/bin/env bash
# Sequence-level knowledge distillation: train an AR Transformer teacher on
# the raw WMT14 En-De data, translate the training set with beam search and
# binarize (source, teacher translation) with the same dictionary.
#
#   bash examples/wmt14_en_de/distill.sh              # Transformer-big teacher, all GPUs
#   TEACHER=base NGPUS=4 bash examples/wmt14_en_de/distill.sh
#   bash examples/wmt14_en_de/distill.sh --dry-run    # tiny teacher on the dry-run data, CPU
#   bash examples/wmt14_en_de/distill.sh --print-command   # the teacher's fairseq-train command only
#
# Steps (each skipped when its output is complete):
#   1. train the teacher (Vaswani et al. 2017: Transformer-big, 300k updates,
#      or -base, 100k; ~25k tokens per update, Adam (0.9, 0.98), inverse
#      square root schedule with 4k warm-up, label smoothing 0.1), resumable;
#   2. average its last 20 (big) / 5 (base) checkpoints, as Vaswani et al.;
#   3. translate the binarized training split with beam 4, length penalty 0.6,
#      in one shard per GPU (fairseq-generate --distributed-world-size N
#      --distributed-rank i), and put the hypotheses back in corpus order;
#   4. fairseq-preprocess the distilled training set and the original
#      valid/test sets with --srcdict of the raw data (--joined-dictionary),
#      into data-bin/wmt14_en_de_distill; check every sentence count.
# Mask-Predict and SUNDAE distill from Transformer-big (TEACHER=big, the
# default); SUNDAE App. F also reports a Transformer-base teacher.
#
# Environment: TEACHER (big|base), NGPUS, NNODES/NODE_RANK/MASTER_ADDR/
# MASTER_PORT (the teacher trains on all nodes; node 0 then translates on
# its own GPUs, the other nodes stop), MAX_TOKENS (per GPU, 4096), BEAM (4),
# PRECISION, WORKDIR, PY.  Run prepare.sh first.
set -euo pipefail
RECIPE=wmt14/distill
# shellcheck source=examples/wmt14_en_de/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ALLOW_PRINT_COMMAND=1 parse_recipe_args "$@"
DATA=raw
DATA_BIN=$BIN_RAW  # the teacher learns from the raw data

TEACHER=${TEACHER:-big}
case $TEACHER in
  big) arch=transformer_vaswani_wmt_en_de_big lr=5e-4 max_update=300000 average=20 ;;  # dropout 0.3
  base) arch=transformer_wmt_en_de lr=7e-4 max_update=100000 average=5 ;;
  *) die "TEACHER must be 'big' or 'base', got '$TEACHER'" ;;
esac
# Dry run: a 1+1-layer, 32-wide Transformer for a few updates.
if ((DRY_RUN)); then
  arch_flags=(--arch transformer --encoder-layers 1 --decoder-layers 1 --encoder-embed-dim 32
    --decoder-embed-dim 32 --encoder-ffn-embed-dim 64 --decoder-ffn-embed-dim 64
    --encoder-attention-heads 2 --decoder-attention-heads 2)
else
  arch_flags=(--arch "$arch")
fi
MAX_UPDATE=${MAX_UPDATE:-$(by_mode "$max_update" 4)}
AVERAGE=$(by_mode "$average" 2)
SAVE_INTERVAL=$(by_mode 1000 2)
MAX_TOKENS=${MAX_TOKENS:-$(by_mode 4096 1024)}
TARGET_TOKENS=$(by_mode 25000 2048)
BEAM=${BEAM:-4}
GEN_MAX_TOKENS=$(by_mode 16384 2048)
# one decoding shard per GPU; the dry run uses 2 CPU shards to exercise the merge
SHARDS=$(by_mode "$((NGPUS > 0 ? NGPUS : 1))" 2)
TEACHER_DIR=$RUNS/teacher_${TEACHER}_raw
DISTILL_TEXT=$DATA_DIR/distill

train_teacher() {
  if [ -e "$TEACHER_DIR/train.complete" ] && ((!PRINT_COMMAND)); then
    log "teacher already trained ($TEACHER_DIR)"
    return
  fi
  train_model "teacher_$TEACHER" tokens "$TARGET_TOKENS" "$MAX_TOKENS" \
    --task translation "${arch_flags[@]}" --share-all-embeddings \
    --criterion label_smoothed_cross_entropy --label-smoothing 0.1 \
    --optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-9 --clip-norm 0.0 --weight-decay 0.0 \
    --lr "$lr" --lr-scheduler inverse_sqrt --warmup-updates 4000 --warmup-init-lr 1e-7 \
    --max-tokens "$MAX_TOKENS" --max-update "$MAX_UPDATE" --num-workers "$(by_mode 2 0)" \
    --save-interval-updates "$SAVE_INTERVAL" --keep-interval-updates "$AVERAGE" --no-epoch-checkpoints
  ((PRINT_COMMAND)) || touch "$TEACHER_DIR/train.complete"
}

average_teacher() {
  local averaged=$TEACHER_DIR/averaged.pt
  if [ -s "$averaged" ] && [ -z "$(find "$TEACHER_DIR/checkpoints" -name 'checkpoint*.pt' -newer "$averaged")" ]; then
    log "$averaged is newer than every teacher checkpoint: kept"
    return
  fi
  "$PY" "$SCRIPTS/evaluation/average_checkpoints.py" --last "$AVERAGE" --dir "$TEACHER_DIR/checkpoints" --output "$averaged"
}

# Decode shard i of the training split on GPU i (CPU in a dry run); the
# shards run in parallel and each output is renamed into place only when complete.
translate_train() {
  local i pids=() device=() visible=()
  mkdir -p "$DISTILL_TEXT"
  if ((NGPUS == 0)); then device=(--cpu); elif [ "$PRECISION" = fp16 ]; then device=(--fp16); fi
  IFS=, read -ra visible <<<"${CUDA_VISIBLE_DEVICES:-}"
  for ((i = 0; i < SHARDS; i++)); do
    local out=$DISTILL_TEXT/generate.shard$i.out
    [ -s "$out" ] && continue
    log "translating the training set, shard $((i + 1))/$SHARDS (beam $BEAM)"
    (
      # shard i on the i-th GPU this node may use
      if ((NGPUS > 0)); then export CUDA_VISIBLE_DEVICES=${visible[i]:-$i}; fi
      "$PY" -m fairseq_cli.generate "$BIN_RAW" --user-dir "$USER_DIR" --task translation \
        --path "$TEACHER_DIR/averaged.pt" --gen-subset train --beam "$BEAM" --lenpen 0.6 \
        --max-len-a 1.2 --max-len-b 10 --max-tokens "$GEN_MAX_TOKENS" --required-batch-size-multiple 1 \
        --distributed-world-size "$SHARDS" --distributed-rank "$i" "${device[@]}" >"$out.part" 2>"$out.log"
      mv "$out.part" "$out"
    ) &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || die "fairseq-generate failed (see $DISTILL_TEXT/generate.shard*.out.log)"; done
}

# Hypotheses of all shards, sorted by sentence id, as the distilled targets.
# BPE is kept (no --remove-bpe): the text is binarized as it is.
collect_hypotheses() {
  local expected
  expected=$(line_count "$DATA_DIR/bpe/train.en")
  if [ ! -s "$DISTILL_TEXT/train.de" ]; then
    grep -h '^H-' "$DISTILL_TEXT"/generate.shard*.out | sed 's/^H-//' | sort -t $'\t' -k1,1n \
      >"$DISTILL_TEXT/hypotheses.tsv"
    # every id 0..N-1 exactly once, or the pairs would be misaligned
    awk -F '\t' -v n="$expected" 'NR - 1 != $1 { bad = 1; exit } END { exit bad || NR != n }' "$DISTILL_TEXT/hypotheses.tsv" ||
      die "the shards do not hold exactly one hypothesis for each of the $expected training sentences"
    cut -f3 "$DISTILL_TEXT/hypotheses.tsv" >"$DISTILL_TEXT/train.de.part"
    mv "$DISTILL_TEXT/train.de.part" "$DISTILL_TEXT/train.de"
  fi
  cp "$DATA_DIR/bpe/train.en" "$DISTILL_TEXT/train.en"
  check_count "distilled train.de" "$(line_count "$DISTILL_TEXT/train.de")" "$expected"
}

binarize_distilled() {
  if [ ! -e "$BIN_DISTILL/.complete" ]; then
    rm -rf "$BIN_DISTILL"
    "$PY" -m fairseq_cli.preprocess --source-lang en --target-lang de --trainpref "$DISTILL_TEXT/train" \
      --validpref "$DATA_DIR/bpe/valid" --testpref "$DATA_DIR/bpe/test" --destdir "$BIN_DISTILL" \
      --srcdict "$BIN_RAW/dict.en.txt" --joined-dictionary --workers "$NPROC"
    cp "$BIN_RAW/bpecodes" "$BIN_DISTILL/bpecodes"
    touch "$BIN_DISTILL/.complete"
  fi
  cmp -s "$BIN_RAW/dict.de.txt" "$BIN_DISTILL/dict.de.txt" || die "the distilled data's dictionary differs from the raw data's"
  local split lang
  for split in train valid test; do
    for lang in en de; do
      check_count "binarized distilled $split.$lang" "$(idx_count "$BIN_DISTILL/$split.en-de.$lang.idx")" \
        "$(idx_count "$BIN_RAW/$split.en-de.$lang.idx")"
    done
  done
}

if ((PRINT_COMMAND)); then
  train_teacher
  exit 0
fi
[ -s "$BIN_RAW/dict.en.txt" ] || die "no binarized data in $BIN_RAW: run prepare.sh$(by_mode '' ' --dry-run') first"
train_teacher
if ((NODE_RANK > 0)); then
  log "node $NODE_RANK: teacher trained; the training set is translated on node 0"
  exit 0
fi
average_teacher
translate_train
collect_hypotheses
binarize_distilled
log "done: $BIN_DISTILL (train with DATA=distill)"
