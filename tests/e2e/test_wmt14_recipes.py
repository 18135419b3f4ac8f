"""The WMT14 En-De recipes (examples/wmt14_en_de) end to end in their --dry-run mode.

One dry run of prepare -> distill -> train (every model) -> evaluate on the
made-up stand-in corpus, CPU, tiny models, a few updates: the recipes' own
flags, run through the real fairseq CLIs, so a renamed or removed flag breaks
this test.  Two chains run concurrently to halve the wall time (each fairseq
start-up costs seconds): distilled data (distill.sh, CMLM) and raw data
(SUNDAE, DA-Transformer, DiffGLAT).  DiffGLAT is skipped until
nat_plugins/models/diffglat.py exists.

The real (full-size, multi-GPU) commands are checked with --print-command:
their --update-freq keeps each paper's batch, the multi-node launch goes
through torchrun, and fairseq's own parser accepts every flag.
"""
import concurrent.futures
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

# Not `from conftest import ROOT`: with tests/scripts collected in the same run,
# "conftest" may name tests/scripts/conftest.py.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPES = os.path.join(ROOT, "examples", "wmt14_en_de")
HAS_DIFFGLAT = os.path.exists(os.path.join(ROOT, "nat_plugins", "models", "diffglat.py"))
TEST_LINES = 40  # the stand-in newstest2014 (scripts/data/wmt14_dry_run_corpus.py)
#: model -> (training data, decoding settings written by evaluate.sh)
MODELS = {
    "cmlm": ("distill", ["mask_predict_T10_len5"]),
    "sundae": ("raw", ["argmax_unrolled_T4_n16", "sample_T10_n16"]),
    "dat": ("raw", ["lookahead", "joint_viterbi"]),
    "diffglat": ("raw", ["joint_viterbi_I1", "joint_viterbi_I3"]),
}
# Variables the recipes read that must not leak in from the caller's shell.
_RECIPE_VARS = ("NGPUS", "NNODES", "NODE_RANK", "MASTER_ADDR", "DATA", "MODELS", "MAX_TOKENS", "MAX_UPDATE",
                "DRY_RUN", "VARIANT", "TEACHER", "PRECISION", "BATCH_SENTENCES", "SAVE_INTERVAL")


def recipe_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in _RECIPE_VARS}
    env.update(PY=sys.executable, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return env


def run_recipe(script, *args, **env):
    result = subprocess.run(
        ["bash", os.path.join(RECIPES, script), *args], env=recipe_env(**env), capture_output=True, text=True,
        timeout=1800, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{script} {' '.join(args)} failed:\n{output[-4000:]}"
    return output


def run_chain(steps):
    return [run_recipe(script, "--dry-run", **env) for script, env in steps]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("wmt14"))
    logs = {"prepare": run_recipe("prepare.sh", "--dry-run", WORKDIR=work)}
    raw_models = ["sundae", "dat"] + (["diffglat"] if HAS_DIFFGLAT else [])
    chains = {
        "distill": [("distill.sh", {}), ("train_cmlm.sh", {"DATA": "distill"}),
                    ("evaluate.sh", {"DATA": "distill", "MODELS": "cmlm"})],
        "raw": [(f"train_{m}.sh", {"DATA": "raw"}) for m in raw_models]
        + [("evaluate.sh", {"DATA": "raw", "MODELS": " ".join(raw_models)})],
    }
    for steps in chains.values():
        for _, env in steps:
            env["WORKDIR"] = work
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(run_chain, steps) for name, steps in chains.items()}
        logs.update({name: "\n".join(future.result()) for name, future in futures.items()})
    return work, logs


def test_prepare_cleans_counts_and_binarizes(dry_run):
    work, logs = dry_run
    data = os.path.join(work, "data", "wmt14_en_de")
    with open(os.path.join(data, "clean.json")) as handle:
        # the stand-in holds 2 empty-side and 1 over-long pair (length), 3 pairs with ratio 3
        assert json.load(handle) == {"input": 600, "kept": 594, "length": 3, "ratio": 3}
    assert "training pairs after cleaning: 594" in logs["prepare"]
    assert "binarized test.de: 40 lines (expected 40)" in logs["prepare"]
    tokenized = open(os.path.join(data, "tok", "train.en"), encoding="utf-8").read()
    assert " @-@ " in tokenized  # Moses aggressive dash splitting of "e-mail", "well-known"
    with open(os.path.join(work, "data-bin", "wmt14_en_de", "bpecodes"), encoding="utf-8") as handle:
        assert sum(1 for line in handle if not line.startswith("#")) == 100  # the dry run's BPE merges


def test_prepare_is_idempotent(dry_run):
    work, _ = dry_run
    data_bin = os.path.join(work, "data-bin", "wmt14_en_de")
    before = {name: os.path.getmtime(os.path.join(data_bin, name)) for name in os.listdir(data_bin)}
    output = run_recipe("prepare.sh", "--dry-run", WORKDIR=work)
    assert "binarize (fairseq-preprocess --joined-dictionary): up to date, skipped" in output
    assert "made-up stand-in" not in output and "] cleaning:" not in output and "] extracting" not in output
    assert {name: os.path.getmtime(os.path.join(data_bin, name)) for name in os.listdir(data_bin)} == before


def test_distilled_data_uses_the_teacher_and_the_same_dictionary(dry_run):
    work, logs = dry_run
    distill = os.path.join(work, "data", "wmt14_en_de", "distill")
    raw_bin, distill_bin = (os.path.join(work, "data-bin", name) for name in ("wmt14_en_de", "wmt14_en_de_distill"))
    for lang in ("en", "de"):
        assert open(os.path.join(raw_bin, f"dict.{lang}.txt")).read() == open(
            os.path.join(distill_bin, f"dict.{lang}.txt")).read()
    # two decoding shards, merged back into corpus order: line i is the H- line of sentence i
    hypotheses = {}
    for shard in (0, 1):
        with open(os.path.join(distill, f"generate.shard{shard}.out"), encoding="utf-8") as handle:
            shard_hyps = {int(line[2:].split("\t")[0]): line.rstrip("\n").split("\t")[2]
                          for line in handle if line.startswith("H-")}
        assert shard_hyps, f"shard {shard} translated nothing"
        assert not set(shard_hyps) & set(hypotheses)
        hypotheses.update(shard_hyps)
    targets = open(os.path.join(distill, "train.de"), encoding="utf-8").read().split("\n")[:-1]
    assert targets == [hypotheses[i] for i in range(594)]
    assert open(os.path.join(distill, "train.en")).read() == open(
        os.path.join(work, "data", "wmt14_en_de", "bpe", "train.en")).read()
    assert "binarized distilled train.de: 594 lines (expected 594)" in logs["distill"]


@pytest.mark.parametrize("model", sorted(MODELS))
def test_model_trains_averages_decodes_and_scores(dry_run, model):
    if model == "diffglat" and not HAS_DIFFGLAT:
        pytest.skip("DiffGLAT has not landed (no nat_plugins/models/diffglat.py)")
    work, logs = dry_run
    data, settings = MODELS[model]
    run = os.path.join(work, "runs", "wmt14_en_de", f"{model}_{data}")
    log = logs["distill" if data == "distill" else "raw"]
    # the update-freq rule: 1 CPU worker, the dry run's per-worker batch is half its target
    assert f"{model} on {data} data:" in log and "x 1 worker(s) x update-freq 2 =" in log
    assert os.path.exists(os.path.join(run, "averaged.pt"))
    for setting in settings:
        with open(os.path.join(run, f"test.{setting}.json")) as handle:
            result = json.load(handle)
        assert result["sentences"] == TEST_LINES
        assert 0.0 <= result["bleu_tok"] <= 100.0 and 0.0 <= result["sacrebleu"] <= 100.0
        assert result["sacrebleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
        report = open(os.path.join(work, "runs", "wmt14_en_de", f"results_{data}.md")).read()
        assert f"| {model} | {setting} | {result['bleu_tok']:.2f} | {result['sacrebleu']:.2f} |" in report


def printed_command(script, **env):
    """The fairseq-train argv a recipe would run in its real (full-size) configuration."""
    line = run_recipe(script, "--print-command", WORKDIR=ROOT, **env).strip().splitlines()[-1]
    return shlex.split(line)


def flag(argv, name):
    return argv[argv.index(name) + 1]


@pytest.mark.parametrize(
    "script, env, update_freq",
    [
        ("train_cmlm.sh", {"NGPUS": "1"}, "16"),  # 8192 x 16 = 131072 >= 128k tokens
        ("train_cmlm.sh", {"NGPUS": "8"}, "2"),
        ("train_dat.sh", {"NGPUS": "8"}, "2"),  # 4096 x 8 x 2 = 65536 >= 64k tokens
        ("train_sundae.sh", {"NGPUS": "4"}, "4"),  # 256 sentences x 4 x 4 = 4096 sentences
        ("train_diffglat.sh", {"NGPUS": "2", "NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "node0"}, "4"),
        ("distill.sh", {"NGPUS": "1", "TEACHER": "base"}, "7"),  # 4096 x 7 = 28672 >= 25k tokens
    ],
)
def test_real_commands_keep_the_paper_batch_and_parse(script, env, update_freq):
    if "diffglat" in script and not HAS_DIFFGLAT:
        pytest.skip("DiffGLAT has not landed (no nat_plugins/models/diffglat.py)")
    argv = printed_command(script, **env)
    assert flag(argv, "--update-freq") == update_freq
    workers = int(env["NGPUS"]) * int(env.get("NNODES", "1"))
    assert flag(argv, "--distributed-world-size") == str(workers)
    assert "--cpu" not in argv and "--fp16" in argv
    if "NNODES" in env:  # one torchrun per node, fairseq started as a module by it
        assert argv[1:3] == ["-m", "torch.distributed.run"]
        assert [flag(argv, f) for f in ("--nnodes", "--node_rank", "--nproc_per_node", "--master_addr")] == [
            "2", "1", "2", "node0"]
    start = argv.index("fairseq_cli.train") + 1
    from fairseq import options

    args = options.parse_args_and_arch(options.get_training_parser(), argv[start:])
    assert args.update_freq == [int(update_freq)] and args.fp16
    assert not args.arch.endswith("_tiny")


def test_recipes_reject_bad_settings():
    for script, env, message in [
        ("train_dat.sh", {"DATA": "distilled"}, "DATA must be 'raw' or 'distill'"),
        ("train_cmlm.sh", {"NGPUS": "2", "NNODES": "2"}, "multi-node training needs MASTER_ADDR"),
        ("distill.sh", {"TEACHER": "huge"}, "TEACHER must be 'big' or 'base'"),
    ]:
        result = subprocess.run(["bash", os.path.join(RECIPES, script), "--print-command"], env=recipe_env(**env),
                                capture_output=True, text=True, check=False)
        assert result.returncode != 0 and message in result.stderr, (script, result.stderr)


def test_shell_recipes_pass_shellcheck():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    scripts = sorted(
        os.path.relpath(os.path.join(folder, name), ROOT)
        for folder, _, names in os.walk(os.path.join(ROOT, "examples")) for name in names if name.endswith(".sh")
    )
    assert "examples/wmt14_en_de/common.sh" in scripts
    result = subprocess.run(["shellcheck", "-x", *scripts], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-4000:]
