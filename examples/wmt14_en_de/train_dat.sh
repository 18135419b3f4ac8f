#!/usr/bin/env bash
# DA-Transformer (Huang et al. 2022) on WMT14 En-De.
#
#   bash examples/wmt14_en_de/train_dat.sh                  # raw data, every GPU of this node
#   DATA=distill NGPUS=4 bash examples/wmt14_en_de/train_dat.sh
#   bash examples/wmt14_en_de/train_dat.sh --dry-run        # tiny model, CPU, a few updates
#   bash examples/wmt14_en_de/train_dat.sh --print-command  # show the fairseq-train command only
#
# The paper's recipe (REFERENCE §3 and the authors' published training
# command): Transformer base with learned positions and GELU, graph of
# 8 x source length vertices, glancing ratio annealed 0.5 -> 0.1 over 200k
# updates, ~64k tokens per update, 300k updates, Adam (0.9, 0.999),
# learning rate 5e-4 after 10k warm-up updates (inverse square root),
# weight decay 0.01, gradient clipping 0.1, dropout 0.1, no label
# smoothing, sources of at most 128 tokens (graphs of at most 1024
# vertices); validation BLEU every 10k updates and the 5 best checkpoints
# by it are averaged (evaluate.sh).  Decoding: lookahead and joint-Viterbi.
#
# Environment: DATA (raw|distill), NGPUS, NNODES/NODE_RANK/MASTER_ADDR/
# MASTER_PORT, MAX_TOKENS (per GPU, 4096), MAX_UPDATE, SAVE_INTERVAL
# (10000), PRECISION, SEED, WORKDIR, PY.  See README.md.
set -euo pipefail
RECIPE=wmt14/train_dat
# shellcheck source=examples/wmt14_en_de/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ALLOW_PRINT_COMMAND=1 parse_recipe_args "$@"

MAX_TOKENS=${MAX_TOKENS:-$(by_mode 4096 1024)}
MAX_UPDATE=${MAX_UPDATE:-$(by_mode 300000 4)}
SAVE_INTERVAL=${SAVE_INTERVAL:-$(by_mode 10000 2)}
BEST=$(by_mode 5 2)
dat_recipe "$SAVE_INTERVAL" "$BEST"

train_model dat tokens "$(by_mode 64000 2048)" "$MAX_TOKENS" \
  "${NAT_FLAGS[@]}" --arch "$(by_mode dat_base dat_tiny)" --upsample-scale "$(by_mode 8 4)" \
  --criterion dag_loss --glance-p 0.5:0.1@200k "${DAT_RECIPE[@]}" \
  --max-tokens "$MAX_TOKENS" --max-update "$MAX_UPDATE" --num-workers "$(by_mode 2 0)"
