# shellcheck shell=bash disable=SC2034
# Shared by the WMT14 En-De recipes in this folder (sourced, never run).
#
# (SC2034: the variables set here are used by the scripts that source it.)
# One place for: paths, the --dry-run switch, GPU detection, the rule that
# keeps the effective batch of the papers whatever the number of GPUs, the
# fairseq-train launcher (CPU, one GPU, one node, many nodes) and
# line-count checks.  See README.md for the variables.

WMT14_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$WMT14_DIR/../.." && pwd)
SCRIPTS=$ROOT/scripts
# --user-dir on every fairseq call, AR included: it installs the allow-list
# that torch >= 2.6 needs to load fairseq checkpoints (resume, decode).
USER_DIR=$ROOT/nat_plugins
RECIPE=${RECIPE:-wmt14}

log() { printf '[%s] %s\n' "$RECIPE" "$*" >&2; }
die() {
  printf '[%s] error: %s\n' "$RECIPE" "$*" >&2
  exit 1
}

# The calling script's header comment (line 2 up to the first line that is not a comment).
usage() { sed -n '2,/^[^#]/ s/^# \{0,1\}//p' "$0"; }

# by_mode REAL DRY: the value for the current mode.  Only sizes differ
# between a dry run and a real one; every flag is the same.
by_mode() { if ((DRY_RUN)); then printf '%s' "$2"; else printf '%s' "$1"; fi; }

# parse_recipe_args "$@": --dry-run, --print-command (train scripts only),
# -h/--help, and "-- FLAGS..." passed on to fairseq-train.
parse_recipe_args() {
  DRY_RUN=${DRY_RUN:-0}
  PRINT_COMMAND=0
  EXTRA_ARGS=()
  while (($#)); do
    case $1 in
      --dry-run) DRY_RUN=1 ;;
      --print-command)
        [ "${ALLOW_PRINT_COMMAND:-0}" = 1 ] || die "--print-command exists only for the train_*.sh recipes"
        PRINT_COMMAND=1
        ;;
      -h | --help)
        usage
        exit 0
        ;;
      --)
        shift
        [ "${ALLOW_PRINT_COMMAND:-0}" = 1 ] || die "only the train_*.sh recipes take extra fairseq flags after --"
        EXTRA_ARGS=("$@")
        break
        ;;
      *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
  done
  [[ $DRY_RUN =~ ^[01]$ ]] || die "DRY_RUN must be 0 or 1, got '$DRY_RUN'"
  setup_environment
}

setup_environment() {
  if [ -z "${PY:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python; else PY=python3; fi
  fi
  command -v "$PY" >/dev/null || die "python '$PY' not found: run 'make setup' or set PY"
  # Dry runs never touch the real data: they default to a scratch folder.
  WORKDIR=${WORKDIR:-$(by_mode "$ROOT" "${TMPDIR:-/tmp}/nat_plugins_wmt14_dry_run")}
  mkdir -p "$WORKDIR"
  WORKDIR=$(cd "$WORKDIR" && pwd)
  DATA_DIR=$WORKDIR/data/wmt14_en_de      # downloads/, raw/, tok/, bpe/, distill/
  BIN_RAW=$WORKDIR/data-bin/wmt14_en_de
  BIN_DISTILL=$WORKDIR/data-bin/wmt14_en_de_distill
  RUNS=$WORKDIR/runs/wmt14_en_de
  DATA=${DATA:-raw}
  case $DATA in
    raw) DATA_BIN=$BIN_RAW ;;
    distill) DATA_BIN=$BIN_DISTILL ;;
    *) die "DATA must be 'raw' or 'distill', got '$DATA'" ;;
  esac
  NPROC=$(by_mode "$(nproc)" 1)
  SEED=${SEED:-1}
  PRECISION=${PRECISION:-fp16}
  case $PRECISION in fp16 | bf16 | fp32) ;; *) die "PRECISION must be fp16, bf16 or fp32" ;; esac
  detect_gpus
}

is_count() { [[ $1 =~ ^[0-9]+$ ]]; }

# NGPUS = GPUs used on this node (0 = CPU).  Given, or: none in a dry run;
# else the devices in CUDA_VISIBLE_DEVICES; else `nvidia-smi -L`; else torch.
detect_gpus() {
  if [ -n "${NGPUS:-}" ]; then
    is_count "$NGPUS" || die "NGPUS must be a number, got '$NGPUS'"
  elif ((DRY_RUN)); then
    NGPUS=0
  elif [ -n "${CUDA_VISIBLE_DEVICES+set}" ]; then
    local devices
    IFS=, read -ra devices <<<"$CUDA_VISIBLE_DEVICES"
    NGPUS=${#devices[@]}
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    NGPUS=$(nvidia-smi -L | grep -c '^GPU ' || true)
  else
    NGPUS=$("$PY" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
  fi
  NNODES=${NNODES:-1}
  NODE_RANK=${NODE_RANK:-0}
  if ! is_count "$NNODES" || ((NNODES < 1)); then die "NNODES must be a positive number, got '$NNODES'"; fi
  if ! is_count "$NODE_RANK" || ((NODE_RANK >= NNODES)); then
    die "NODE_RANK must be in 0..NNODES-1, got '$NODE_RANK'"
  fi
  if ((NNODES > 1)); then
    ((NGPUS > 0)) || die "multi-node training needs GPUs (NGPUS > 0 on every node)"
    [ -n "${MASTER_ADDR:-}" ] || die "multi-node training needs MASTER_ADDR (the address of node 0)"
  fi
  MASTER_PORT=${MASTER_PORT:-29500}
  # Data-parallel workers in all: one process per GPU, one on CPU.
  WORLD=$((NNODES * (NGPUS > 0 ? NGPUS : 1)))
}

# update_freq TARGET PER_WORKER: ceil(TARGET / (PER_WORKER * WORLD)), so the
# batch of one update is the paper's (or the next multiple of PER_WORKER*WORLD).
update_freq() {
  local target=$1 per_worker=$2
  echo $(((target + per_worker * WORLD - 1) / (per_worker * WORLD)))
}

# train_model NAME UNIT TARGET PER_WORKER FLAGS...
#   NAME: run folder $RUNS/NAME_$DATA (checkpoints/, train.log)
#   UNIT/TARGET/PER_WORKER: the paper's batch (UNIT "tokens" or "sentences")
#   and what one worker holds per step (the --max-tokens / --batch-size in FLAGS)
# Adds the data, the save folder, --update-freq, the device, precision and
# distributed flags, and the extra flags given after "--".  Resumes from
# checkpoint_last.pt when the run folder has one (fairseq's default).
train_model() {
  local name=$1 unit=$2 target=$3 per_worker=$4
  shift 4
  local dir=$RUNS/${name}_$DATA freq launcher=() device=()
  freq=$(update_freq "$target" "$per_worker")
  if ((NGPUS == 0)); then
    device=(--cpu)
  else
    case $PRECISION in fp16) device=(--fp16) ;; bf16) device=(--bf16) ;; fp32) ;; esac
    device+=(--distributed-world-size "$WORLD")
  fi
  if ((NNODES > 1)); then
    # One process per GPU started by torchrun on every node; fairseq reads
    # MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK from it (env:// init, no spawn).
    launcher=("$PY" -m torch.distributed.run --nnodes "$NNODES" --node_rank "$NODE_RANK"
      --nproc_per_node "$NGPUS" --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT"
      -m fairseq_cli.train)
  else
    # One node: fairseq-train itself spawns one process per GPU.
    launcher=("$PY" -m fairseq_cli.train)
  fi
  local command=("${launcher[@]}" "$DATA_BIN" --user-dir "$USER_DIR" "$@"
    --update-freq "$freq" --seed "$SEED" --save-dir "$dir/checkpoints"
    --log-format simple --log-interval 100 "${device[@]}" "${EXTRA_ARGS[@]}")
  if ((PRINT_COMMAND)); then
    printf '%q ' "${command[@]}"
    printf '\n'
    return
  fi
  [ -s "$DATA_BIN/dict.en.txt" ] || die "no binarized data in $DATA_BIN: run $(by_mode prepare.sh 'prepare.sh --dry-run')$([ "$DATA" = distill ] && echo ' and distill.sh')"
  mkdir -p "$dir/checkpoints"
  log "$name on $DATA data: $per_worker $unit per worker x $WORLD worker(s) x update-freq $freq" \
    "= $((per_worker * WORLD * freq)) $unit per update (paper: $target); log: $dir/train.log"
  printf '%q ' "${command[@]}" >"$dir/train.command"
  "${command[@]}" 2>&1 | tee -a "$dir/train.log"
}

# Flags that make fairseq validate with BLEU and keep the best checkpoints
# by it (DA-Transformer and DiffGLAT average the 5 best by valid BLEU).
# Also logs the tokenized, compound-split BLEU (bleu_tok).
EVAL_BLEU_FLAGS=(--eval-bleu --eval-bleu-detok moses --eval-bleu-remove-bpe --eval-bleu-tok
  --best-checkpoint-metric bleu --maximize-best-checkpoint-metric)

# dat_recipe SAVE_INTERVAL BEST: sets DAT_RECIPE to DA-Transformer's training
# recipe (the authors' published command, REFERENCE §3), which DiffGLAT
# builds on and leaves unspecified: learned positions, GELU, Adam (0.9,
# 0.999), learning rate 5e-4 after 10k warm-up updates (inverse square
# root), weight decay 0.01, gradient clipping 0.1, dropout 0.1, sources of at
# most 128 tokens (longer training pairs skipped); validation BLEU every
# SAVE_INTERVAL updates and the BEST best checkpoints kept for averaging.
dat_recipe() {
  DAT_RECIPE=(--encoder-learned-pos --decoder-learned-pos --activation-fn gelu
    --optimizer adam --adam-betas '(0.9,0.999)' --weight-decay 0.01 --clip-norm 0.1
    --lr 5e-4 --lr-scheduler inverse_sqrt --warmup-updates 10000 --warmup-init-lr 1e-7 --dropout 0.1
    --max-source-positions 128 --skip-invalid-size-inputs-valid-test
    "${EVAL_BLEU_FLAGS[@]}" --no-epoch-checkpoints --save-interval-updates "$1"
    --validate-interval-updates "$1" --keep-best-checkpoints "$2" --keep-interval-updates 1)
}

# Shared by every NAT recipe.  legacy_ddp: gradients of parameters that a
# step does not use (e.g. DiffGLAT's unsampled transitions) are all-reduced
# as zeros instead of making PyTorch DDP fail; --fixed-validation-seed:
# stochastic validation (CMLM masks, SUNDAE corruption) is comparable across
# checkpoints, which matters when the best ones are averaged.
NAT_FLAGS=(--task nat_translation --ddp-backend legacy_ddp --fixed-validation-seed 7)

# Line and sentence counts -------------------------------------------------

line_count() { wc -l <"$1" | tr -d ' '; }

# Sentences in a fairseq binarized split: the count stored in its .idx
# header (9-byte magic, 8-byte version, 1-byte dtype, then 8 bytes).
idx_count() { od -An -t u8 --endian=little -j 18 -N 8 "$1" | tr -d ' '; }

# check_count WHAT ACTUAL EXPECTED
check_count() {
  if [ "$2" != "$3" ]; then die "$1: $2 lines, expected $3"; fi
  log "$1: $2 lines (expected $3)"
}
