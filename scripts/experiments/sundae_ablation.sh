#!/usr/bin/env bash
# SUNDAE ablation on the quickstart corpus (reproduces benchmarks/sundae.md).
#
#   bash scripts/experiments/sundae_ablation.sh train l12 l1      # two trainings side by side
#   bash scripts/experiments/sundae_ablation.sh train nolen lenfixed
#   bash scripts/experiments/sundae_ablation.sh eval [ARM...]     # [l12]: sampling at T = 1, 4, 10; argmax-unrolled at T = 4
#   bash scripts/experiments/sundae_ablation.sh eval-arms l1 l1u nolen lenfixed   # T = 10 sampling
#   bash scripts/experiments/sundae_ablation.sh valid l12 l1 nolen lenfixed   # valid L(1), L(2) (nats->bits)
#
# Arms (all sundae_small 2+2x128, same optimiser, seed and wall-clock budget):
#   l12       L(1:2), length prediction, canvas 2*ceil(l/2)   (the default)
#   l1        L(1) only (--unroll-steps 1)
#   l1u       L(1) only, stopped at the number of updates l12 reached
#   nolen     L(1:2), no length prediction: fixed 40-position canvas
#   lenfixed  L(1:2), length prediction + fixed 40-position canvas (isolates
#             the length embedding from the canvas width)
#   noslack   L(1:2), length canvas without its 25% end slack (--sundae-canvas-slack 0)
#   cut       L(1:2), output cut at the first <eos> (--sundae-read-out cut-at-end)
#
# Environment: PY [.venv/bin/python], BUDGET_MIN [8] wall-clock minutes per
# training (fairseq --stop-time-hours), UPDATES [unset] an update budget per
# training instead (--max-update; the paper compares at equal steps, and an
# update budget is immune to machine load), THREADS [1] torch threads per job,
# RUN_DIR [runs/sundae_ablation], DATA_BIN [data-bin/quickstart],
# DATA_RAW [data/quickstart/raw], SAMPLES [the model's n: 4 for sundae_small; the
# 2026-12-02 run used 2], LENGTH_BEAM [1], TEST_N [300], TAU [the model's: 0.5],
# RHO [0.3], SEED [1], DEVICE [auto: the GPU when torch sees one, else cpu; "cpu"
# forces the CPU].
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PY=${PY:-.venv/bin/python}
BUDGET_MIN=${BUDGET_MIN:-8}
THREADS=${THREADS:-1}
RUN_DIR=${RUN_DIR:-runs/sundae_ablation}
DATA_BIN=${DATA_BIN:-data-bin/quickstart}
DATA_RAW=${DATA_RAW:-data/quickstart/raw}
SAMPLES=${SAMPLES:-}
LENGTH_BEAM=${LENGTH_BEAM:-1}
TEST_N=${TEST_N:-300}  # decode the first TEST_N test sentences (0 = all 1200)
TAU=${TAU:-}
RHO=${RHO:-0.3}
SEED=${SEED:-1}
DEVICE=${DEVICE:-auto}
if [ "$DEVICE" = auto ]; then
  DEVICE=$("$PY" -c "import torch; print('gpu' if torch.cuda.is_available() else 'cpu')")
fi
CPU_FLAG=()
[ "$DEVICE" = gpu ] || CPU_FLAG=(--cpu)

l12_updates() {
  grep -o "num_updates [0-9]*\|num_updates=[0-9]*" "$RUN_DIR/l12/train.log" | tail -n 1 | grep -o "[0-9]*$"
}

arm_flags() {
  case "$1" in
    l12) echo "--unroll-steps 2" ;;
    l1) echo "--unroll-steps 1" ;;
    # L(1) stopped at the update count the L(1:2) arm reached in its budget
    # (the paper compares at equal steps); needs the l12 run to exist.
    l1u) echo "--unroll-steps 1 --max-update $(l12_updates)" ;;
    nolen) echo "--unroll-steps 2 --sundae-no-length-prediction" ;;
    lenfixed) echo "--unroll-steps 2 --sundae-canvas fixed" ;;
    noslack) echo "--unroll-steps 2 --sundae-canvas-slack 0" ;;
    cut) echo "--unroll-steps 2 --sundae-read-out cut-at-end" ;;
    *) echo "unknown arm $1" >&2; exit 2 ;;
  esac
}

train_arm() {
  local arm=$1 dir="$RUN_DIR/$1"
  mkdir -p "$dir"
  local budget
  if [ -n "${UPDATES:-}" ]; then
    budget=(--max-update "$UPDATES")
  else
    budget=(--stop-time-hours "$("$PY" -c "print($BUDGET_MIN / 60)")")
  fi
  # Appended, not overwritten: a larger UPDATES resumes from checkpoint_last.pt and the
  # log then holds every segment of the run.
  echo "== $(date -u '+%F %T') UTC: $arm ${budget[*]}" >>"$dir/train.log"
  # shellcheck disable=SC2046
  OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS "$PY" -m fairseq_cli.train "$DATA_BIN" \
    --user-dir nat_plugins --task nat_translation --arch sundae_small --criterion sundae_loss \
    $(arm_flags "$arm") --label-smoothing 0.1 \
    --optimizer adam --adam-betas "(0.9,0.98)" --clip-norm 0.0 \
    --lr 2e-3 --lr-scheduler inverse_sqrt --warmup-updates 100 --warmup-init-lr 1e-7 \
    --dropout 0.1 --weight-decay 0.0 --max-tokens 4096 \
    --max-source-positions 256 --max-target-positions 256 \
    "${budget[@]}" --save-dir "$dir/checkpoints" --no-epoch-checkpoints \
    --save-interval-updates 100000 --disable-validation --seed "$SEED" --num-workers 0 \
    --log-format simple --log-interval 10 "${CPU_FLAG[@]}" >>"$dir/train.log" 2>&1
}

test_bin() {
  # The first TEST_N test sentences, binarized with the quickstart dictionaries
  # (decoding all 1200 x 10 configurations does not fit the contended CPU).
  if [ "$TEST_N" = 0 ]; then echo "$DATA_BIN"; return; fi
  local sub="$RUN_DIR/test$TEST_N"
  if [ ! -e "$sub/bin/test.en-de.de.bin" ]; then
    mkdir -p "$sub"
    for l in en de; do head -n "$TEST_N" "data/quickstart/bpe/test.$l" >"$sub/test.$l"; done
    head -n "$TEST_N" "$DATA_RAW/test.de" >"$sub/raw.de"
    "$PY" -m fairseq_cli.preprocess --source-lang en --target-lang de --testpref "$sub/test" \
      --srcdict "$DATA_BIN/dict.en.txt" --tgtdict "$DATA_BIN/dict.de.txt" --destdir "$sub/bin" \
      --workers 1 >"$sub/preprocess.log" 2>&1
  fi
  echo "$sub/bin"
}

decode() {
  # decode ARM TAG FLAGS...: generate the test split, then score it.
  local arm=$1 tag=$2; shift 2
  local dir="$RUN_DIR/$arm" bin raw
  bin=$(test_bin)
  raw="$DATA_RAW/test.de"
  [ "$TEST_N" = 0 ] || raw="$RUN_DIR/test$TEST_N/raw.de"
  # Unset SAMPLES / TAU: the model's defaults (§3.1; fairseq-generate --help lists them).
  local chosen=()
  [ -z "$SAMPLES" ] || chosen+=(--decode-samples "$SAMPLES")
  [ -z "$TAU" ] || chosen+=(--decode-temperature "$TAU")
  OMP_NUM_THREADS=$THREADS "$PY" -m fairseq_cli.generate "$bin" --user-dir nat_plugins \
    --task nat_translation --path "$dir/checkpoints/checkpoint_last.pt" --gen-subset test \
    --batch-size 128 --required-batch-size-multiple 1 --remove-bpe "${CPU_FLAG[@]}" \
    ${chosen[@]+"${chosen[@]}"} --length-beam "$LENGTH_BEAM" --decode-seed "$SEED" "$@" \
    >"$dir/gen.$tag.out" 2>&1
  "$PY" scripts/evaluation/score.py "$dir/gen.$tag.out" --raw-ref "$raw" --lang de --json >"$dir/score.$tag.json"
  echo "$arm $tag $(cat "$dir/score.$tag.json")"
}

valid_losses() {
  # valid_losses ARM: L(1), L(2) of the L(1:2) objective on the valid split
  # (fixed corruption/sampling seed), whatever loss the arm was trained with.
  local arm=$1 dir="$RUN_DIR/$1"
  OMP_NUM_THREADS=$THREADS "$PY" - "$DATA_BIN" "$dir/checkpoints/checkpoint_last.pt" "$SEED" >"$dir/valid_losses.json" <<'PYEOF'
import json, math, sys
import torch
import nat_plugins  # noqa: F401
from fairseq import checkpoint_utils
from nat_plugins.criterions.sundae_loss import SUNDAELoss
data, path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides={"data": data})
model = models[0].eval()
task.load_dataset("valid")
crit = SUNDAELoss(task, label_smoothing=0.0, unroll_steps=2)
g = torch.Generator().manual_seed(seed)
itr = task.get_batch_iterator(task.dataset("valid"), max_tokens=4096, max_positions=(256, 256)).next_epoch_itr(shuffle=False)
tot = {"l1": 0.0, "l2": 0.0, "length_loss": 0.0}
n = 0
with torch.no_grad():
    for sample in itr:
        _, _, log = crit(model, sample, generator=g)
        w = sample["target"].size(0)
        for k in tot:
            tot[k] += float(log.get(k, 0.0)) * w
        n += w
print(json.dumps({k: round(v / n / math.log(2), 4) for k, v in tot.items()}))
PYEOF
  echo "$arm valid $(cat "$dir/valid_losses.json")"
}

case "${1:-}" in
  train)
    shift
    pids=()
    for arm in "$@"; do train_arm "$arm" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p"; done
    ;;
  eval)
    # The issue #16 grid: low-temperature sampling at T = 1, 4, 10; argmax-unrolled at T = 4.
    shift
    [ $# -gt 0 ] || set -- l12
    for arm in "$@"; do
      for T in 1 4 10; do
        decode "$arm" "stoch.T$T" --decode-iterations "$T"
      done
      decode "$arm" det.T4 --decode-iterations 4 --decoding-strategy sundae_argmax_unrolled --argmax-unrolled-rho "$RHO"
    done
    ;;
  eval-arms)
    shift
    for arm in "$@"; do
      decode "$arm" stoch.T10 --decode-iterations 10
    done
    ;;
  decode)
    shift
    decode "$@"
    ;;
  report)
    # Collect updates, valid losses and scores into benchmarks/sundae.json.
    "$PY" - "$RUN_DIR" "${2:-benchmarks/sundae.json}" <<'PYEOF'
import glob, json, os, re, sys
run_dir, out = sys.argv[1], sys.argv[2]
res = {}
for arm_dir in sorted(glob.glob(os.path.join(run_dir, "*"))):
    arm = os.path.basename(arm_dir)
    if not os.path.exists(os.path.join(arm_dir, "train.log")):
        continue
    log = open(os.path.join(arm_dir, "train.log")).read()
    ups = re.findall(r"num_updates[ =](\d+)", log)
    final = [l for l in log.splitlines() if "| train | epoch" in l]
    entry = {"updates": int(ups[-1]) if ups else None, "train_summary": final[-1].split("| train |")[1].strip() if final else None}
    vl = os.path.join(arm_dir, "valid_losses.json")
    if os.path.exists(vl):
        entry["valid_bits"] = json.load(open(vl))
    entry["decoding"] = {}
    for f in sorted(glob.glob(os.path.join(arm_dir, "score.*.json"))):
        tag = os.path.basename(f)[len("score."):-len(".json")]
        try:
            entry["decoding"][tag] = json.load(open(f))
        except ValueError:
            pass
    res[arm] = entry
json.dump(res, open(out, "w"), indent=1, sort_keys=True)
print(json.dumps(res, indent=1, sort_keys=True))
PYEOF
    ;;
  valid)
    shift
    for arm in "$@"; do valid_losses "$arm"; done
    ;;
  *)
    sed -n '2,20p' "$0"; exit 2 ;;
esac
