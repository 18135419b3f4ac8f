#!/usr/bin/env bash
# Reproduces benchmarks/dat.md: DA-Transformer (greedy / lookahead / joint-Viterbi /
# length-normalised sampling) against CMLM (1 and 10 iterations) and the AR baseline
# on the quickstart corpus, every model trained for the same wall-clock budget.
#
#   bash scripts/benchmarks/dat_comparison.sh                 # BUDGET=8 minutes per model
#   BUDGET=2 RUN_DIR=/tmp/datcmp bash scripts/benchmarks/dat_comparison.sh
#   SYNTH=1 BUDGET=3 RUN_DIR=runs/dat_comparison_synth bash scripts/benchmarks/dat_comparison.sh
#       the supplementary run of benchmarks/dat.md on a synthetic task (below)
#
# Stages (each skipped when its output exists): train dat, cmlm, ar one after the
# other (--stop-time-hours), average the last 3 checkpoints, decode the whole test
# split (batch 128) and score it (scripts/evaluation/score.py), then time batch-1 decoding of
# the first $LAT_N test sentences (median ms/sentence), and write $RUN_DIR/results.json.
# benchmarks/dat.md is written by hand from results.json.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

PY=${PY:-.venv/bin/python}
BUDGET=${BUDGET:-8}
RUN_DIR=${RUN_DIR:-runs/dat_comparison}
DATA_BIN=${DATA_BIN:-data-bin/quickstart}
DATA_RAW=${DATA_RAW:-data/quickstart/raw}
LAT_N=${LAT_N:-200}
SEED=${SEED:-1}
SYNTH=${SYNTH:-0}

if [ "$SYNTH" = 1 ]; then
  # Synthetic "translation" small enough to be learned in minutes on 2 cores:
  # 200 source words; w(i) -> W(i), except i % 5 == 0 -> two tokens "W(i) X(i)",
  # i % 7 == 0 (i > 0) -> dropped; after W0 the next two target words swap.
  # Target lengths differ from source lengths, so length handling matters.
  DATA_RAW=${SYNTH_RAW:-data/dat_synth/raw}
  DATA_BIN=${SYNTH_BIN:-data-bin/dat_synth}
  if [ ! -s "$DATA_BIN/dict.de.txt" ]; then
    "$PY" - "$DATA_RAW" "$DATA_BIN" <<'SYNTH_EOF'
import os, random, sys
raw, dest = sys.argv[1], sys.argv[2]
os.makedirs(raw, exist_ok=True)
def pair(rng):
    src = [rng.randrange(200) for _ in range(rng.randint(4, 16))]
    tgt = []
    for i in src:
        if i % 7 == 0 and i:
            continue
        tgt += [f"W{i}", f"X{i}"] if i % 5 == 0 else [f"W{i}"]
    for k in range(len(tgt) - 2):
        if tgt[k] == "W0":
            tgt[k + 1], tgt[k + 2] = tgt[k + 2], tgt[k + 1]
    return " ".join(f"w{i}" for i in src), " ".join(tgt) or "W0"
for split, n, seed in (("train", 30000, 0), ("valid", 300, 1), ("test", 500, 2)):
    rng = random.Random(seed)
    with open(f"{raw}/{split}.en", "w") as fs, open(f"{raw}/{split}.de", "w") as ft:
        for _ in range(n):
            s, t = pair(rng)
            fs.write(s + "\n"); ft.write(t + "\n")
from fairseq import options
from fairseq_cli import preprocess
args = options.get_preprocessing_parser().parse_args([
    "--source-lang", "en", "--target-lang", "de", "--trainpref", f"{raw}/train", "--validpref", f"{raw}/valid",
    "--testpref", f"{raw}/test", "--destdir", dest, "--joined-dictionary", "--workers", "1"])
preprocess.main(args)
SYNTH_EOF
  fi
fi

# shellcheck source=examples/quickstart/models.sh
source examples/quickstart/models.sh

# DAT for this comparison: lambda = 4 (not the paper's 8) because every decoder
# pass costs lambda x the tokens on 2 CPU cores; glancing at p = 0.5 (annealing
# over 200k updates is flat over a few hundred).
DAT_TRAIN=(--user-dir nat_plugins --task nat_translation --arch dat_small --criterion dag_loss
  --upsample-scale 4 --glance-p 0.5:0.1@200k)
CMLM_TRAIN=("${MODEL_cmlm_TRAIN[@]}")
AR_TRAIN=("${MODEL_ar_TRAIN[@]}")

hours=$(awk -v m="$BUDGET" 'BEGIN { printf "%.6f", m / 60 }')
mkdir -p "$RUN_DIR"

train() {  # name flags...
  local name=$1; shift
  local dir=$RUN_DIR/$name
  if [ -e "$dir/train.done" ]; then echo "[dat_comparison] $name: trained, kept"; return; fi
  rm -rf "$dir"; mkdir -p "$dir"
  echo "[dat_comparison] $name: training $BUDGET min ($(date -u +%H:%M:%S) UTC)"
  "$PY" -m fairseq_cli.train "$DATA_BIN" "$@" "${COMMON_TRAIN[@]}" --save-dir "$dir/checkpoints" \
    --stop-time-hours "$hours" --save-interval-updates 50 --keep-interval-updates 3 --no-epoch-checkpoints \
    --seed "$SEED" --num-workers 0 --log-format simple --log-interval 25 >"$dir/train.log" 2>&1
  "$PY" scripts/evaluation/average_checkpoints.py --last 3 --allow-fewer --dir "$dir/checkpoints" --output "$dir/averaged.pt" \
    >>"$dir/train.log" 2>&1
  touch "$dir/train.done"
}

decode() {  # label model flags...
  local label=$1 name=$2; shift 2
  local out=$RUN_DIR/$label.generate.out
  if [ ! -s "$RUN_DIR/$label.score.json" ]; then
    echo "[dat_comparison] $label: decoding the test split"
    "$PY" -m fairseq_cli.generate "$DATA_BIN" --path "$RUN_DIR/$name/averaged.pt" --gen-subset test \
      "${COMMON_GEN[@]}" "$@" >"$out" 2>&1
    "$PY" scripts/evaluation/score.py "$out" --raw-ref "$DATA_RAW/test.de" --lang de --json >"$RUN_DIR/$label.score.json"
  fi
  if [ ! -s "$RUN_DIR/$label.latency.json" ]; then
    echo "[dat_comparison] $label: batch-1 latency on the first $LAT_N test sentences"
    "$PY" - "$DATA_BIN" "$RUN_DIR/$name/averaged.pt" "$LAT_N" "$@" >"$RUN_DIR/$label.latency.json" <<'EOF'
import json, statistics, sys, time
import torch
from fairseq import checkpoint_utils, options, tasks, utils
import nat_plugins  # noqa: F401  (registers the plugin, allow-lists checkpoint classes)

data, path, n, flags = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
parser = options.get_generation_parser()
args = options.parse_args_and_arch(parser, [data, "--path", path, "--gen-subset", "test",
                                            "--user-dir", "nat_plugins", *flags])
task = tasks.setup_task(args)
task.load_dataset("test")
models, _ = checkpoint_utils.load_model_ensemble([path], task=task)
for m in models:
    m.eval()
generator = task.build_generator(models, args)
ds = task.dataset("test")
times = []
with torch.no_grad():
    for i in range(min(n, len(ds))):
        sample = ds.collater([ds[i]])
        t0 = time.perf_counter()
        task.inference_step(generator, models, sample)
        times.append((time.perf_counter() - t0) * 1000)
print(json.dumps({"median_ms": statistics.median(times), "mean_ms": statistics.mean(times), "n": len(times),
                  "threads": torch.get_num_threads()}))
EOF
  fi
}

train dat "${DAT_TRAIN[@]}"
train cmlm "${CMLM_TRAIN[@]}"
train ar "${AR_TRAIN[@]}"

decode ar ar --task translation --beam 4 --max-len-a 1.2 --max-len-b 10
decode ar_greedy ar --task translation --beam 1 --max-len-a 1.2 --max-len-b 10
decode cmlm_1 cmlm --task nat_translation --decode-iterations 1 --length-beam 1
decode cmlm_10 cmlm --task nat_translation --decode-iterations 10 --length-beam 3
decode dat_greedy dat --task nat_translation --decoding-strategy dag_greedy
decode dat_lookahead dat --task nat_translation --decoding-strategy dag_lookahead --decode-beta 1.0
decode dat_joint_viterbi dat --task nat_translation --decoding-strategy dag_joint_viterbi --decode-viterbi-beta 1.0
decode dat_sample_lennorm dat --task nat_translation --decoding-strategy dag_sample_lennorm --decode-samples 8 \
  --decode-temperature 0.5 --decode-seed 1

"$PY" - "$RUN_DIR" <<'EOF'
import glob, json, os, re, sys
run = sys.argv[1]
res = {}
for f in sorted(glob.glob(os.path.join(run, "*.score.json"))):
    label = os.path.basename(f)[: -len(".score.json")]
    res[label] = {"score": json.load(open(f))}
    lat = os.path.join(run, label + ".latency.json")
    if os.path.exists(lat):
        res[label]["latency"] = json.load(open(lat))
for name in ("ar", "cmlm", "dat"):
    log = open(os.path.join(run, name, "train.log")).read()
    ups = re.findall(r"num_updates[= ](\d+)", log)
    res.setdefault("_train", {})[name] = {"updates": int(ups[-1]) if ups else None}
json.dump(res, open(os.path.join(run, "results.json"), "w"), indent=1)
print(json.dumps(res, indent=1))
try:  # BLEU against batch-1 latency, one point per system
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, r in res.items():
        if label.startswith("_") or "latency" not in r:
            continue
        ax.scatter(r["latency"]["median_ms"], r["score"]["bleu_tok"], label=label)
    ax.set_xlabel("batch-1 latency, median ms/sentence (CPU, shared)")
    ax.set_ylabel("BLEU (tok, compound-split)")
    ax.set_xscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(run, "results.png"), dpi=100)
except ImportError:
    pass
EOF
