#!/usr/bin/env bash
# CMLM parity: nat_plugins `cmlm` vs stock fairseq `cmlm_transformer`, same
# data, seed, size, optimiser, update budget and decoding settings.
#
#   bash scripts/cmlm_parity.sh [DATA=data-bin/quickstart] [UPDATES=800]
#
# Both trainings run at the same time, one thread each, so that whatever
# else the machine does slows them alike and words/s compare fairly.
# Writes benchmarks/cmlm_parity.md and .json.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data-bin/quickstart}
UPDATES=${UPDATES:-800}
OUT=${OUT:-runs/cmlm_parity}
BIN=${BIN:-.venv/bin}
mkdir -p "$OUT" benchmarks
[ -d "$DATA" ] || { echo "cmlm_parity: $DATA missing; run 'make quickstart' (or scripts/prepare_data.py) first" >&2; exit 2; }

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

GEN=(--gen-subset test --batch-size 64 --remove-bpe --cpu --required-batch-size-multiple 1)
decode() {  # name, extra args...
  local name=$1; shift
  "$BIN/fairseq-generate" "$DATA" "${GEN[@]}" "$@" > "$OUT/gen_$name.txt" 2> "$OUT/gen_$name.err"
}
echo "[parity] decoding"
decode ours_l1 --user-dir nat_plugins --task nat_translation --path "$OUT/ours/checkpoint_last.pt" --decode-iterations 10 --length-beam 1
decode stock_l1 --task translation_lev --path "$OUT/stock/checkpoint_last.pt" --iter-decode-max-iter 9 --iter-decode-with-beam 1 --iter-decode-force-max-iter
decode ours_l3 --user-dir nat_plugins --task nat_translation --path "$OUT/ours/checkpoint_last.pt" --decode-iterations 10 --length-beam 3
decode stock_l3 --task translation_lev --path "$OUT/stock/checkpoint_last.pt" --iter-decode-max-iter 9 --iter-decode-with-beam 3 --iter-decode-force-max-iter

"$BIN/python" - "$OUT" "$UPDATES" <<'PY'
import json, os, platform, re, subprocess, sys, datetime
out, updates = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, "scripts")
from score import main as _  # noqa: F401  (fail early if scoring is broken)
def wps(log):
    vals = [float(m) for m in re.findall(r"\| train \| .*?wps ([0-9.]+)", open(log).read())]
    inner = [float(m) for m in re.findall(r"train_inner .*?wps=([0-9.]+)", open(log).read())]
    return (vals[-1] if vals else None), inner
def final_loss(log):
    m = re.findall(r"\| train \| .*?\| loss ([0-9.]+)", open(log).read())
    return float(m[-1]) if m else None
def score(name):
    res = subprocess.run([sys.executable, "scripts/score.py", os.path.join(out, f"gen_{name}.txt"), "--json"], capture_output=True, text=True, check=True)
    s = json.loads(res.stdout)
    gen = open(os.path.join(out, f"gen_{name}.txt")).read()
    fb = re.search(r"BLEU4 = ([0-9.]+)", gen)
    sp = re.search(r"\(([0-9.]+) sentences/s", open(os.path.join(out, f"gen_{name}.err")).read() + gen)
    n = len(re.findall(r"^H-", gen, re.M))
    return dict(s, fairseq_bleu=float(fb.group(1)) if fb else None, sentences_per_s=float(sp.group(1)) if sp else None, n_hyps=n)
rows = {}
for who in ("ours", "stock"):
    w, inner = wps(os.path.join(out, f"train_{who}.log"))
    rows[who] = {"train_wps": w, "train_wps_inner_median": sorted(inner)[len(inner)//2] if inner else None,
                 "final_train_loss": final_loss(os.path.join(out, f"train_{who}.log")),
                 "l1": score(f"{who}_l1"), "l3": score(f"{who}_l3")}
meta = {"date": datetime.date.today().isoformat(), "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "command": f"UPDATES={updates} bash scripts/cmlm_parity.sh", "updates": updates}
json.dump({"meta": meta, "rows": rows}, open("benchmarks/cmlm_parity.json", "w"), indent=2)
o, s = rows["ours"], rows["stock"]
def f(x, d=2):
    return "n/a" if x is None else f"{x:.{d}f}"
lines = [
 "# CMLM parity: nat_plugins `cmlm` vs stock fairseq `cmlm_transformer`", "",
 f"- Date: {meta['date']}; machine: {meta['machine']}; torch CPU, fp32, one thread per training (both trained at the same time).",
 f"- Command: `{meta['command']}` (data: the quickstart corpus, `data-bin/quickstart`).",
 f"- Same: data, seed 1, 2+2 layers x 128 (FFN 512, 4 heads, shared embeddings), Adam 2e-3, inverse-sqrt with 200 warm-up, 4096 tokens/batch, label smoothing 0.1, length loss 0.1, {updates} updates, last checkpoint.",
 "- Decoding: 10 decoder passes (ours `--decode-iterations 10`; stock `--iter-decode-max-iter 9 --iter-decode-force-max-iter`, which is also 10 passes); length beam 1 and 3 (ours: top-3 predicted lengths; stock: argmax +- 1).",
 "- BLEU = fairseq-generate's tokenized BLEU on BPE-removed output; sacreBLEU/chrF from `scripts/score.py` (detokenized).", "",
 "| | ours | stock fairseq | difference |", "|---|---|---|---|",
 f"| training words/s (epoch average) | {f(o['train_wps'],0)} | {f(s['train_wps'],0)} | {f(100*(o['train_wps']/s['train_wps']-1),1)} % |",
 f"| final train loss (base 2) | {f(o['final_train_loss'],3)} | {f(s['final_train_loss'],3)} | |",
]
for key, label in (("l1", "length beam 1"), ("l3", "length beam 3")):
    lines.append(f"| BLEU, {label} | {f(o[key]['fairseq_bleu'])} | {f(s[key]['fairseq_bleu'])} | {f(o[key]['fairseq_bleu']-s[key]['fairseq_bleu'])} |")
    lines.append(f"| sacreBLEU, {label} | {f(o[key].get('sacrebleu'))} | {f(s[key].get('sacrebleu'))} | |")
    lines.append(f"| chrF, {label} | {f(o[key].get('chrf'))} | {f(s[key].get('chrf'))} | |")
    lines.append(f"| sentences decoded, {label} | {o[key]['n_hyps']} | {s[key]['n_hyps']} | |")
open("benchmarks/cmlm_parity.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
