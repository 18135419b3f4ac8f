#!/usr/bin/env bash
# WMT14 English->German data: download, Moses tokenization, cleaning, joint BPE, binarization.
#
#   bash examples/wmt14_en_de/prepare.sh             # -> data-bin/wmt14_en_de
#   bash examples/wmt14_en_de/prepare.sh --dry-run   # tiny made-up corpus, no network
#
# Steps (each skipped when its output exists and is complete, so an
# interrupted run resumes where it stopped):
#   1. download Europarl v7, CommonCrawl and News Commentary v9 (the WMT14
#      training data, as fairseq's prepare-wmt14en2de.sh --icml17) from
#      statmt.org, and newstest2013 (valid) / newstest2014 (test, the full
#      3003-line version) with sacrebleu --echo;
#   2. extract the En-De files and check every corpus' line count;
#   3. clean the training pairs: 1-250 Moses tokens per side, length ratio
#      at most 1.5 (scripts/data/clean_corpus.py); ~4.5M pairs remain;
#   4. Moses normalization + tokenization (sacremoses), joint BPE with 40k
#      merges (subword-nmt), fairseq-preprocess --joined-dictionary
#      (scripts/data/prepare_data.py, which caches each step itself);
#   5. check the sentence counts of the binarized splits.
#
# Environment: WORKDIR (default: the repository; dry run: a scratch folder),
# BPE_MERGES (40000), PY, ALLOW_COUNT_MISMATCH=1 (warn instead of failing
# when a downloaded corpus does not have its expected line count).
set -euo pipefail
RECIPE=wmt14/prepare
# shellcheck source=examples/wmt14_en_de/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_recipe_args "$@"

BPE_MERGES=${BPE_MERGES:-$(by_mode 40000 100)}
DOWNLOADS=$DATA_DIR/downloads
EXTRACTED=$DATA_DIR/extracted
RAW=$DATA_DIR/raw
STATMT=https://www.statmt.org

# name | archive | file prefix inside it (found wherever it lies) | lines
CORPORA=(
  "europarl|training-parallel-europarl-v7.tgz|europarl-v7.de-en|$(by_mode 1920209 240)"
  "commoncrawl|training-parallel-commoncrawl.tgz|commoncrawl.de-en|$(by_mode 2399123 240)"
  "news-commentary|training-parallel-nc-v9.tgz|news-commentary-v9.de-en|$(by_mode 201288 120)"
)
declare -A URLS=(
  [training-parallel-europarl-v7.tgz]=$STATMT/wmt13/training-parallel-europarl-v7.tgz
  [training-parallel-commoncrawl.tgz]=$STATMT/wmt13/training-parallel-commoncrawl.tgz
  [training-parallel-nc-v9.tgz]=$STATMT/wmt14/training-parallel-nc-v9.tgz
)
# split | newstest | sacrebleu test set | lines
TEST_SETS=(
  "valid|newstest2013|wmt13|$(by_mode 3000 40)"
  "test|newstest2014|wmt14/full|$(by_mode 3003 40)"
)
# Pairs left after cleaning.  The published figure is "4.5M pairs" (the raw
# total is 4,520,620); cleaning drops a few percent, so the check accepts
# 4.0M up to the raw total.  The dry-run corpus has 6 dirty pairs of 600.
TRAIN_RAW=$(by_mode 4520620 600)
TRAIN_MIN=$(by_mode 4000000 594)
TRAIN_MAX=$(by_mode 4520620 594)

expect_count() { # WHAT ACTUAL EXPECTED: check_count, or only warn when allowed
  if [ "$2" != "$3" ] && [ "${ALLOW_COUNT_MISMATCH:-0}" = 1 ]; then
    log "warning: $1: $2 lines, expected $3 (ALLOW_COUNT_MISMATCH=1: continuing)"
  else
    check_count "$@"
  fi
}

fetch() { # URL OUTPUT
  [ -s "$2" ] && return
  log "downloading $1"
  if command -v curl >/dev/null; then
    curl -fL --retry 3 -o "$2.part" "$1"
  else
    wget -O "$2.part" "$1"
  fi
  mv "$2.part" "$2"
}

download() {
  mkdir -p "$DOWNLOADS"
  if ((DRY_RUN)); then
    if [ ! -e "$DOWNLOADS/.complete" ]; then
      log "dry run: writing the made-up stand-in corpus instead of downloading"
      "$PY" "$SCRIPTS/data/wmt14_dry_run_corpus.py" --out-dir "$DOWNLOADS" >/dev/null
      touch "$DOWNLOADS/.complete"
    fi
    return
  fi
  local archive entry name set lang side
  for archive in "${!URLS[@]}"; do fetch "${URLS[$archive]}" "$DOWNLOADS/$archive"; done
  for entry in "${TEST_SETS[@]}"; do
    IFS='|' read -r _ name set _ <<<"$entry"
    for lang in en de; do
      [ -s "$DOWNLOADS/$name.$lang" ] && continue
      side=$([ "$lang" = en ] && echo src || echo ref)
      log "sacrebleu -t $set -l en-de --echo $side > $name.$lang"
      "$PY" -m sacrebleu -t "$set" -l en-de --echo "$side" >"$DOWNLOADS/$name.$lang.part"
      mv "$DOWNLOADS/$name.$lang.part" "$DOWNLOADS/$name.$lang"
    done
  done
}

# corpus_file NAME PREFIX LANG: the extracted file (archives differ in layout)
corpus_file() {
  local found
  found=$(find "$EXTRACTED/$1" -type f -name "$2.$3" -print -quit)
  [ -n "$found" ] || die "$2.$3 not found in the $1 archive"
  printf '%s' "$found"
}

extract() {
  local entry name archive prefix
  for entry in "${CORPORA[@]}"; do
    IFS='|' read -r name archive prefix _ <<<"$entry"
    [ -e "$EXTRACTED/$name/.complete" ] && continue
    log "extracting $prefix.{en,de} from $archive"
    rm -rf "${EXTRACTED:?}/$name"
    mkdir -p "$EXTRACTED/$name"
    # only the En-De files: the CommonCrawl archive holds four more pairs
    tar -xzf "$DOWNLOADS/$archive" -C "$EXTRACTED/$name" --wildcards "*$prefix.en" "*$prefix.de"
    touch "$EXTRACTED/$name/.complete"
  done
}

# Concatenate the corpora (after checking their line counts) and clean them.
build_train() {
  local entry name prefix expected en de total=0 sources_en=() sources_de=()
  for entry in "${CORPORA[@]}"; do
    IFS='|' read -r name _ prefix expected <<<"$entry"
    en=$(corpus_file "$name" "$prefix" en)
    de=$(corpus_file "$name" "$prefix" de)
    [ "$(line_count "$en")" = "$(line_count "$de")" ] || die "$prefix: the en and de files differ in length"
    expect_count "$prefix" "$(line_count "$en")" "$expected"
    total=$((total + $(line_count "$en")))
    sources_en+=("$en")
    sources_de+=("$de")
  done
  expect_count "training corpora together" "$total" "$TRAIN_RAW"
  local unclean=$DATA_DIR/train.unclean
  if [ ! -e "$unclean.complete" ]; then
    cat "${sources_en[@]}" >"$unclean.en"
    cat "${sources_de[@]}" >"$unclean.de"
    touch "$unclean.complete"
  fi
  mkdir -p "$RAW"
  # clean.json is written last: its presence means both sides are complete
  if [ ! -s "$DATA_DIR/clean.json" ]; then
    log "cleaning: 1-250 tokens per side, length ratio <= 1.5 ($NPROC processes)"
    "$PY" "$SCRIPTS/data/clean_corpus.py" --prefix "$unclean" --out-prefix "$RAW/train" -s en -t de \
      --ratio 1.5 --min-len 1 --max-len 250 --workers "$NPROC" --stats "$DATA_DIR/clean.json.part"
    mv "$DATA_DIR/clean.json.part" "$DATA_DIR/clean.json"
  fi
  local kept
  kept=$(line_count "$RAW/train.en")
  [ "$kept" = "$(line_count "$RAW/train.de")" ] || die "$RAW/train.{en,de} differ in length"
  if ((kept < TRAIN_MIN || kept > TRAIN_MAX)); then
    die "training pairs after cleaning: $kept, expected $TRAIN_MIN..$TRAIN_MAX (~4.5M)"
  fi
  log "training pairs after cleaning: $kept (accepted range $TRAIN_MIN..$TRAIN_MAX: the papers say ~4.5M)"
}

build_test_sets() {
  local entry split name expected lang
  for entry in "${TEST_SETS[@]}"; do
    IFS='|' read -r split name _ expected <<<"$entry"
    for lang in en de; do
      expect_count "$name.$lang" "$(line_count "$DOWNLOADS/$name.$lang")" "$expected"
      cmp -s "$DOWNLOADS/$name.$lang" "$RAW/$split.$lang" || cp "$DOWNLOADS/$name.$lang" "$RAW/$split.$lang"
    done
  done
}

binarize() {
  "$PY" "$SCRIPTS/data/prepare_data.py" --raw-dir "$RAW" --work-dir "$DATA_DIR" --dest-dir "$BIN_RAW" \
    --source-lang en --target-lang de --bpe-merges "$BPE_MERGES" --workers "$NPROC"
  local split lang
  for split in train valid test; do
    for lang in en de; do
      check_count "binarized $split.$lang" "$(idx_count "$BIN_RAW/$split.en-de.$lang.idx")" \
        "$(line_count "$RAW/$split.$lang")"
    done
  done
}

download
extract
build_train
build_test_sets
binarize
log "done: $BIN_RAW ($(line_count "$BIN_RAW/dict.en.txt") joint dictionary entries); next: distill.sh or train_*.sh"
