#!/usr/bin/env bash
# SUNDAE (Savinov et al. 2022) on WMT14 En-De.
#
#   bash examples/wmt14_en_de/train_sundae.sh                  # raw data, every GPU of this node
#   DATA=distill bash examples/wmt14_en_de/train_sundae.sh     # dropout 0.05, no label smoothing (§3.1)
#   bash examples/wmt14_en_de/train_sundae.sh --dry-run        # tiny model, CPU, a few updates
#   bash examples/wmt14_en_de/train_sundae.sh --print-command  # show the fairseq-train command only
#
# The paper's recipe (§3.1, App. A.3, B): Transformer base without causal
# mask + the App. B length predictor (63M parameters), unrolled denoising
# loss L(1:2), 4096 sentences per update, 1M updates, Adam (0.9, 0.999,
# eps 1e-6) with decoupled weight decay 0.1 (fairseq's Adam is AdamW),
# learning rate from 1e-7 to 1e-4 over 5k updates then cosine decay to 1e-5
# at the last update, dropout 0.1 and label smoothing 0.1 (distilled data:
# dropout 0.05, no label smoothing), sequences cropped at 128 tokens (the
# model's fixed canvas of 128 crops longer targets); the last 10
# checkpoints are averaged (evaluate.sh).  Decoding: n = 16 samples
# reranked by model score, T = 4 argmax-unrolled and T = 10 low-temperature
# sampling.
#
# The batch is counted in sentences: BATCH_SENTENCES per GPU (256) with
# --max-tokens = 128 x that, so the sentence count, not the token budget,
# closes every batch.
#
# Environment: DATA (raw|distill), NGPUS, NNODES/NODE_RANK/MASTER_ADDR/
# MASTER_PORT, BATCH_SENTENCES, MAX_UPDATE, SAVE_INTERVAL (10000),
# PRECISION, SEED, WORKDIR, PY.  See README.md.
set -euo pipefail
RECIPE=wmt14/train_sundae
# shellcheck source=examples/wmt14_en_de/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ALLOW_PRINT_COMMAND=1 parse_recipe_args "$@"

BATCH_SENTENCES=${BATCH_SENTENCES:-$(by_mode 256 32)}
MAX_UPDATE=${MAX_UPDATE:-$(by_mode 1000000 4)}
SAVE_INTERVAL=${SAVE_INTERVAL:-$(by_mode 10000 2)}
LAST=$(by_mode 10 2)
if [ "$DATA" = distill ]; then regularization=(--dropout 0.05 --label-smoothing 0.0); else
  regularization=(--dropout 0.1 --label-smoothing 0.1)
fi

train_model sundae sentences "$(by_mode 4096 64)" "$BATCH_SENTENCES" \
  "${NAT_FLAGS[@]}" --arch "$(by_mode sundae_base sundae_tiny)" --criterion sundae_loss --unroll-steps 2 \
  "${regularization[@]}" \
  --optimizer adam --adam-betas '(0.9,0.999)' --adam-eps 1e-6 --weight-decay 0.1 --clip-norm 0.0 \
  --lr 1e-4 --lr-scheduler cosine --warmup-updates 5000 --warmup-init-lr 1e-7 --min-lr 1e-5 \
  --batch-size "$BATCH_SENTENCES" --max-tokens "$((BATCH_SENTENCES * 128))" --max-update "$MAX_UPDATE" \
  --num-workers "$(by_mode 2 0)" --no-epoch-checkpoints --save-interval-updates "$SAVE_INTERVAL" \
  --validate-interval-updates "$SAVE_INTERVAL" --keep-interval-updates "$LAST"
