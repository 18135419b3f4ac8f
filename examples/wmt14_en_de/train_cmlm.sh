#!/usr/bin/env bash
# CMLM / Mask-Predict (Ghazvininejad et al. 2019) on WMT14 En-De.
#
#   bash examples/wmt14_en_de/train_cmlm.sh                  # raw data, every GPU of this node
#   DATA=distill NGPUS=4 bash examples/wmt14_en_de/train_cmlm.sh
#   bash examples/wmt14_en_de/train_cmlm.sh --dry-run        # tiny model, CPU, a few updates
#   bash examples/wmt14_en_de/train_cmlm.sh --print-command  # show the fairseq-train command only
#   bash examples/wmt14_en_de/train_cmlm.sh -- --max-update 1000   # more fairseq-train flags
#
# Mask-Predict's recipe (the paper's §4; the project's notes hold only its
# results, so these values are from the paper's text): Transformer base
# (6+6 layers, 512, 8 heads, FFN 2048), 128k tokens per update, 300k
# updates, Adam (0.9, 0.999, eps 1e-6), learning rate 5e-4 after 10k
# warm-up updates then inverse square root, dropout 0.3, weight decay 0.01,
# label smoothing 0.1; validation loss at the end of every epoch, the 5
# best checkpoints are averaged (evaluate.sh).  Decoding: 10 mask-predict
# iterations, 5 length candidates.
#
# Environment: DATA (raw|distill), NGPUS, NNODES/NODE_RANK/MASTER_ADDR/
# MASTER_PORT (multi-node), MAX_TOKENS (per GPU, 8192), MAX_UPDATE,
# PRECISION (fp16|bf16|fp32), SEED, WORKDIR, PY.  See README.md.
set -euo pipefail
RECIPE=wmt14/train_cmlm
# shellcheck source=examples/wmt14_en_de/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ALLOW_PRINT_COMMAND=1 parse_recipe_args "$@"

MAX_TOKENS=${MAX_TOKENS:-$(by_mode 8192 4096)}
MAX_UPDATE=${MAX_UPDATE:-$(by_mode 300000 8)}
BEST=$(by_mode 5 2)

train_model cmlm tokens "$(by_mode 128000 8192)" "$MAX_TOKENS" \
  "${NAT_FLAGS[@]}" --arch "$(by_mode cmlm_base cmlm_tiny)" --criterion cmlm_loss --label-smoothing 0.1 \
  --optimizer adam --adam-betas '(0.9,0.999)' --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 0.0 \
  --lr 5e-4 --lr-scheduler inverse_sqrt --warmup-updates 10000 --warmup-init-lr 1e-7 \
  --dropout 0.3 --max-tokens "$MAX_TOKENS" --max-update "$MAX_UPDATE" --num-workers "$(by_mode 2 0)" \
  --save-interval 1 --validate-interval 1 --keep-best-checkpoints "$BEST" --keep-last-epochs 1
