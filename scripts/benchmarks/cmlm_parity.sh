#!/usr/bin/env bash
# CMLM parity: nat_plugins `cmlm` vs stock fairseq `cmlm_transformer`, same
# data, seed, size, optimiser, update budget and decoding settings.
#
#   bash scripts/benchmarks/cmlm_parity.sh [DATA=data-bin/quickstart] [UPDATES=800]
#
# Both trainings run at the same time, one thread each, so that whatever
# else the machine does slows them alike and words/s compare fairly.
# Writes benchmarks/cmlm_parity.md and .json (scripts/benchmarks/cmlm_parity_report.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-data-bin/quickstart}
UPDATES=${UPDATES:-800}
OUT=${OUT:-runs/cmlm_parity}
BIN=${BIN:-.venv/bin}
mkdir -p "$OUT" benchmarks
[ -d "$DATA" ] || { echo "cmlm_parity: $DATA missing; run 'make quickstart' (or scripts/data/prepare_data.py) first" >&2; exit 2; }

SIZE=(--encoder-layers 2 --decoder-layers 2 --encoder-embed-dim 128 --decoder-embed-dim 128
      --encoder-ffn-embed-dim 512 --decoder-ffn-embed-dim 512 --encoder-attention-heads 4
      --decoder-attention-heads 4 --share-all-embeddings --dropout 0.1)
OPTIM=(--optimizer adam --adam-betas '(0.9,0.98)' --lr 2e-3 --lr-scheduler inverse_sqrt
       --warmup-updates 200 --max-tokens 4096 --max-update "$UPDATES" --seed 1 --cpu
       --no-epoch-checkpoints --disable-validation --log-interval 50 --log-format simple
       --num-workers 0 --length-loss-factor 0.1)

export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
train_ours() {
  "$BIN/fairseq-train" "$DATA" --user-dir nat_plugins --task nat_translation --arch cmlm_base \
    --criterion cmlm_loss --label-smoothing 0.1 "${SIZE[@]}" "${OPTIM[@]}" --save-dir "$OUT/ours" \
    > "$OUT/train_ours.log" 2>&1
}
train_stock() {
  "$BIN/fairseq-train" "$DATA" --task translation_lev --noise random_mask --arch cmlm_transformer \
    --criterion nat_loss --label-smoothing 0.1 "${SIZE[@]}" "${OPTIM[@]}" --save-dir "$OUT/stock" \
    > "$OUT/train_stock.log" 2>&1
}
if [ ! -f "$OUT/ours/checkpoint_last.pt" ] || [ ! -f "$OUT/stock/checkpoint_last.pt" ]; then
  echo "[parity] training both models for $UPDATES updates (logs in $OUT/)"
  train_ours & p1=$!
  train_stock & p2=$!
  wait $p1; wait $p2
fi

# --user-dir for both: torch >= 2.6 refuses stock argparse checkpoints
# without the plugin's allow-list; it also keeps fairseq from dropping the
# last partial batch, for both models alike.
GEN=(--user-dir nat_plugins --gen-subset test --batch-size 64 --remove-bpe --cpu --required-batch-size-multiple 1)
decode() {  # name, extra args...
  local name=$1; shift
  "$BIN/fairseq-generate" "$DATA" "${GEN[@]}" "$@" > "$OUT/gen_$name.txt" 2> "$OUT/gen_$name.err"
}
echo "[parity] decoding"
decode ours_l1 --task nat_translation --path "$OUT/ours/checkpoint_last.pt" --decode-iterations 10 --length-beam 1
decode stock_l1 --task translation_lev --path "$OUT/stock/checkpoint_last.pt" --iter-decode-max-iter 9 --iter-decode-with-beam 1 --iter-decode-force-max-iter
decode ours_l3 --task nat_translation --path "$OUT/ours/checkpoint_last.pt" --decode-iterations 10 --length-beam 3
decode stock_l3 --task translation_lev --path "$OUT/stock/checkpoint_last.pt" --iter-decode-max-iter 9 --iter-decode-with-beam 3 --iter-decode-force-max-iter

"$BIN/python" scripts/benchmarks/cmlm_parity_report.py "$OUT" "$UPDATES" --out benchmarks/cmlm_parity
