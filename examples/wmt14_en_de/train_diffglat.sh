#!/usr/bin/env bash
# DiffGLAT (Qian et al. 2023) on WMT14 En-De, on the plugin's DA-Transformer.
#
#   bash examples/wmt14_en_de/train_diffglat.sh                  # iterative model, raw data
#   VARIANT=non_iterative bash examples/wmt14_en_de/train_diffglat.sh
#   bash examples/wmt14_en_de/train_diffglat.sh --dry-run        # tiny model, CPU, a few updates
#   bash examples/wmt14_en_de/train_diffglat.sh --print-command  # show the fairseq-train command only
#
# The paper's recipe (§4.1, App. E, F): raw data (no distillation),
# Transformer base, 64k tokens per update, 300k updates, 3 decoder layers
# per denoising transition; the iterative model (VARIANT=iterative) has a
# DAG of 4 x source length vertices and 3 passes of the shared decoder
# (T = 6 transitions), the non-iterative one 8 x and 1 pass; the modality
# diffusion process starts after 100k updates (before, every transition
# predicts y_0); residual glancing with alpha 0.5 -> 0.1 (periodically for
# the iterative model); the 5 best checkpoints by validation BLEU are
# averaged (evaluate.sh).  Decoding: joint-Viterbi with 1 and 3 iterations.
# What the paper leaves open is taken from DA-Transformer's recipe
# (dat_recipe in common.sh: optimizer, learning rate, clipping, learned
# positions, GELU, sources of at most 128 tokens); the period of the alpha
# anneal (100k updates) is our choice.
#
# Runs: runs/wmt14_en_de/diffglat_DATA (iterative), diffglat_noniter_DATA.
# Environment: DATA (raw|distill), VARIANT (iterative|non_iterative), NGPUS,
# NNODES/NODE_RANK/MASTER_ADDR/MASTER_PORT, MAX_TOKENS (per GPU, 4096),
# MAX_UPDATE, SAVE_INTERVAL (10000), PRECISION, SEED, WORKDIR, PY.
set -euo pipefail
RECIPE=wmt14/train_diffglat
# shellcheck source=examples/wmt14_en_de/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ALLOW_PRINT_COMMAND=1 parse_recipe_args "$@"

if [ ! -e "$ROOT/nat_plugins/models/diffglat.py" ]; then
  ((DRY_RUN)) || die "DiffGLAT has not landed in this checkout (no nat_plugins/models/diffglat.py)"
  log "SKIP: DiffGLAT has not landed yet (no nat_plugins/models/diffglat.py); nothing to train"
  exit 0
fi

VARIANT=${VARIANT:-iterative}
case $VARIANT in
  iterative) name=diffglat variant=(--upsample-scale 4 --diffusion-iterations 3
    --glance-alpha 0.5:0.1@100k --glance-alpha-periodic) ;;
  non_iterative) name=diffglat_noniter variant=(--upsample-scale 8 --diffusion-iterations 1
    --glance-alpha 0.5:0.1@200k) ;;
  *) die "VARIANT must be 'iterative' or 'non_iterative', got '$VARIANT'" ;;
esac
MAX_TOKENS=${MAX_TOKENS:-$(by_mode 4096 1024)}
MAX_UPDATE=${MAX_UPDATE:-$(by_mode 300000 4)}
SAVE_INTERVAL=${SAVE_INTERVAL:-$(by_mode 10000 2)}
BEST=$(by_mode 5 2)
dat_recipe "$SAVE_INTERVAL" "$BEST"

# the tiny dry-run model has 2 decoder layers: 1 layer per transition
train_model "$name" tokens "$(by_mode 64000 2048)" "$MAX_TOKENS" \
  "${NAT_FLAGS[@]}" --arch "$(by_mode diffglat_base diffglat_tiny)" "${variant[@]}" \
  --layers-per-transition "$(by_mode 3 1)" \
  --criterion diffglat_loss --diffusion-process modality --diffusion-warmup-updates "$(by_mode 100000 4)" \
  "${DAT_RECIPE[@]}" --max-tokens "$MAX_TOKENS" --max-update "$MAX_UPDATE" --num-workers "$(by_mode 2 0)"
