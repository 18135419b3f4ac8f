#!/usr/bin/env python3
"""Validation-BLEU learning curves of long quickstart trainings (issue #19's long-run evidence).

    RUN_DIR=runs/learning_curves MODELS=ar,cmlm UPDATES=4000 CURVE_EVERY=500 SAVE_EVERY=250 \\
        bash examples/quickstart/run.sh
    python scripts/experiments/learning_curves.py                    # -> runs/learning_curves/learning_curves.md
    python scripts/experiments/learning_curves.py --models ar,cmlm --threads 1 --output benchmarks/learning_curves.md

For every model folder of ``--run-dir`` (one per model of examples/quickstart/models.sh, as run.sh leaves
them), it decodes the **valid** split at each kept checkpoint whose update count is a multiple of
``--every``, and at ``checkpoint_last.pt``, with that model's generation flags (``COMMON_GEN`` and
``MODEL_<name>_GEN``, read from models.sh through bash, never copied here), and scores each with
scripts/evaluation/score.py (tokenized BLEU, sacreBLEU, chrF).  Each point is cached as
``<model>/learning_curve/valid_<updates>.json``, written atomically, so a re-run decodes only new points.

From ``train.log`` it reads the validation-loss curve and the wall-clock seconds per update; the final
test scores come from run.sh's ``score.json`` / ``generate.out`` (the averaged checkpoint), or, when
absent, from decoding the test split at the last checkpoint.  The report (Markdown, JSON and a PNG
beside it; scripts/experiments/learning_curves_report.py) states when each NAT first passes 1, 5 and 10
valid BLEU, the AR's valid BLEU at the same updates, whether each model is still improving, and, for
models that did not reach a level, a labelled estimate of the CPU time they would need.
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(_HERE))
for _path in (_HERE, os.path.join(REPO_ROOT, "scripts", "evaluation")):
    if _path not in sys.path:
        sys.path.insert(0, _path)
import learning_curves_report as report  # noqa: E402  (beside this script)
from quickstart_report import _TRAIN_TIME as _DONE, _UPDATES, _VALID  # noqa: E402  (one reader of train.log)

MODELS_SH = os.path.join(REPO_ROOT, "examples", "quickstart", "models.sh")
SCORE_PY = os.path.join(REPO_ROOT, "scripts", "evaluation", "score.py")
_INTERVAL_CKPT = re.compile(r"^checkpoint_\d+_(\d+)\.pt$")
_INNER = re.compile(r"\| train_inner \|.*?num_updates=(\d+).*?\bwall=(\d+)")


class CurveError(ValueError):
    """Bad input: a missing folder, an unknown model, unreadable files."""


# ----------------------------------------------------------------------------------------------------------
# models.sh and train.log
# ----------------------------------------------------------------------------------------------------------


def shell_value(name, models_sh=MODELS_SH):
    """The bash array (or scalar) ``name`` defined by sourcing models.sh, as a list; None when undefined."""
    script = 'source "$1" >/dev/null || exit 4; declare -p "$2" >/dev/null 2>&1 || exit 3; n="$2[@]"; ' \
             'printf "%s\\0" "${!n}"'
    result = subprocess.run(["bash", "-c", script, "_", models_sh, name], capture_output=True)
    if result.returncode == 3:
        return None
    if result.returncode != 0:
        raise CurveError(f"cannot source {models_sh}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode("utf-8").split("\0")[:-1]


def parse_train_log(text):
    """``{"valid_loss": [(updates, loss)], "updates", "seconds_per_update", "train_seconds"}`` of a fairseq log.

    Seconds per update: the sum of ``wall`` increases between consecutive ``train_inner`` lines over the
    updates they span (validation and checkpoint saving included: they are part of training's cost); a
    resumed run (updates or wall going back) starts a new stretch.
    """
    valid = {int(u): float(loss) for loss, u in _VALID.findall(text)}
    seconds = spanned = 0.0
    previous = None
    updates = [int(u) for u in _UPDATES.findall(text)]
    for u, wall in ((int(a), int(b)) for a, b in _INNER.findall(text)):
        if previous is not None and u > previous[0] and wall >= previous[1]:
            seconds += wall - previous[1]
            spanned += u - previous[0]
        previous = (u, wall)
    done = _DONE.findall(text)
    return {
        "valid_loss": sorted(valid.items()),
        "updates": max(updates) if updates else None,
        "seconds_per_update": round(seconds / spanned, 3) if spanned else None,
        "train_seconds": float(done[-1]) if done else None,
    }


def checkpoint_updates(path):
    """The update count stored in a fairseq checkpoint (read with the plugin's safe loader)."""
    from nat_plugins.compat import load_checkpoint_file

    return int(load_checkpoint_file(path)["optimizer_history"][-1]["num_updates"])


def curve_checkpoints(model_dir, every):
    """``[(updates, path)]``: kept checkpoints at multiples of ``every``, plus checkpoint_last.pt's point."""
    folder = os.path.join(model_dir, "checkpoints")
    points = {}
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        found = _INTERVAL_CKPT.match(name)
        if found and int(found.group(1)) % every == 0:
            points[int(found.group(1))] = os.path.join(folder, name)
    last = os.path.join(folder, "checkpoint_last.pt")
    if os.path.exists(last):
        points.setdefault(checkpoint_updates(last), last)
    return sorted(points.items())


# ----------------------------------------------------------------------------------------------------------
# decoding and scoring, cached
# ----------------------------------------------------------------------------------------------------------


def write_json_atomic(path, data):
    """Write ``data`` to ``path`` through a temporary file and a rename: a killed run leaves no half file."""
    part = f"{path}.part{os.getpid()}"
    with open(part, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, ensure_ascii=False)
    os.replace(part, path)


def read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


class Decoder:
    """Decodes one checkpoint on one split and scores it, with a cache and a progress line with an ETA."""

    def __init__(self, args, total):
        self.args, self.total, self.done, self.spent = args, total, 0, 0.0
        self.env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))

    def point(self, name, split, updates, ckpt, flags, out_dir):
        """Scores of ``ckpt`` on ``split`` (cached in ``out_dir/<split>_<updates>.json``)."""
        cache = os.path.join(out_dir, f"{split}_{updates}.json")
        if is_cached(out_dir, split, updates, flags):
            return read_json(cache)
        os.makedirs(out_dir, exist_ok=True)
        eta = (self.spent / self.done * (self.total - self.done) / 60) if self.done else None
        print(f"[learning_curves] {self.done + 1}/{self.total} {name}: decoding {split} at {updates} updates"
              f" (ETA {'-' if eta is None else f'{eta:.1f} min'})", flush=True)
        start = time.monotonic()
        out = os.path.join(out_dir, f"{split}_{updates}.out")
        command = [self.args.python, "-m", "fairseq_cli.generate", self.args.data_bin, "--path", ckpt,
                   "--gen-subset", split, *flags] + ([] if self.args.cuda else ["--cpu"])
        with open(out + ".part", "w", encoding="utf-8") as handle:
            result = subprocess.run(command, cwd=REPO_ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            raise RuntimeError(f"fairseq-generate failed on {ckpt} (log: {out}.part)")
        os.replace(out + ".part", out)
        scores = score_file(self.args.python, out, os.path.join(self.args.raw_dir, f"{split}.de"))
        seconds = time.monotonic() - start
        self.done, self.spent = self.done + 1, self.spent + seconds
        scores.update(updates=updates, checkpoint=_shown_path(ckpt), split=split,
                      generate_flags=flags, decode_seconds=round(seconds, 1))
        write_json_atomic(cache, scores)
        print(f"[learning_curves] {name} {split} BLEU at {updates} updates: {scores['bleu_tok']:.2f} "
              f"({seconds:.0f} s)", flush=True)
        return scores


def is_cached(out_dir, split, updates, flags):
    """True when the point is in the cache, decoded with the same flags."""
    found = read_json(os.path.join(out_dir, f"{split}_{updates}.json"))
    return found is not None and found.get("generate_flags") == flags


def has_test_scores(model_dir):
    """run.sh scored the test split (averaged checkpoint): no test decoding needed here."""
    return read_json(os.path.join(model_dir, "score.json")) is not None and \
        os.path.exists(os.path.join(model_dir, "generate.out"))


def count_decodings(models, plans, common_gen):
    """How many fairseq-generate runs this invocation will make (the progress lines' total)."""
    total = 0
    for name, folder in models:
        gen, out_dir, points = common_gen + plans[name]["gen"], os.path.join(folder, "learning_curve"), \
            plans[name]["points"]
        total += sum(not is_cached(out_dir, "valid", u, gen) for u, _ in points)
        if points and not has_test_scores(folder):
            total += not is_cached(out_dir, "test", points[-1][0], gen)
    return total


def _shown_path(path):
    """``path`` relative to the checkout when inside it (reports stay machine-independent), else absolute."""
    path = os.path.abspath(path)
    return os.path.relpath(path, REPO_ROOT) if path.startswith(REPO_ROOT + os.sep) else path


def score_file(python, generate_out, raw_ref):
    """scripts/evaluation/score.py --json of a fairseq-generate output."""
    result = subprocess.run([python, SCORE_PY, generate_out, "--raw-ref", raw_ref, "--lang", "de", "--json"],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"score.py failed on {generate_out}: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout)


# ----------------------------------------------------------------------------------------------------------
# collecting one model
# ----------------------------------------------------------------------------------------------------------


def examples(generate_out, raw_dir, count=3):
    """``[{"source", "reference", "hypothesis"}]`` of the quickstart report's example sentences."""
    import quickstart_report
    import score

    with open(generate_out, encoding="utf-8") as handle:
        _, hyps, _ = score.parse_generate_lines(handle.read().splitlines())
    hyps = score.moses_detokenize(hyps, "de")
    sources = score.read_lines(os.path.join(raw_dir, "test.en"))
    refs = score.read_lines(os.path.join(raw_dir, "test.de"))
    return [{"source": sources[i], "reference": refs[i], "hypothesis": hyps[i]}
            for i in quickstart_report.pick_examples(sources, count) if i < len(hyps)]


def collect_model(name, model_dir, args, decoder, common_gen, plan):
    """Everything the report needs about one model; decodes the points not cached yet."""
    gen = common_gen + plan["gen"]
    out_dir = os.path.join(model_dir, "learning_curve")
    with open(os.path.join(model_dir, "train.log"), encoding="utf-8", errors="replace") as handle:
        log = parse_train_log(handle.read())
    valid = [decoder.point(name, "valid", u, ckpt, gen, out_dir) for u, ckpt in plan["points"]]
    test_out = os.path.join(model_dir, "generate.out")
    if has_test_scores(model_dir):
        test = read_json(os.path.join(model_dir, "score.json"))
        test_source = "averaged.pt of run.sh (the average of the last checkpoints), score.json"
    elif plan["points"]:
        updates, ckpt = plan["points"][-1]
        test = decoder.point(name, "test", updates, ckpt, gen, out_dir)
        test_out = os.path.join(out_dir, f"test_{updates}.out")
        test_source = f"{os.path.basename(ckpt)} ({updates} updates), decoded by this script"
    else:
        test, test_out, test_source = None, None, "no checkpoint"
    command = None
    if os.path.exists(os.path.join(model_dir, "train.command")):
        with open(os.path.join(model_dir, "train.command"), encoding="utf-8") as handle:
            command = handle.read().strip()
    description = plan["desc"]
    warm = re.search(r"--init-from-ar (\S+)", command or "")
    if warm:
        description += f" (encoder warm-started from {warm.group(1)})"
    env = {}
    if os.path.exists(os.path.join(model_dir, "train.env")):  # written by run.sh: JOBS and THREADS of the run
        with open(os.path.join(model_dir, "train.env"), encoding="utf-8") as handle:
            env = dict(line.strip().split("=", 1) for line in handle if "=" in line)
    return {
        "kind": "ar" if name == "ar" else "nat",
        "description": description,
        "updates": log["updates"],
        "seconds_per_update": log["seconds_per_update"],
        "train_seconds": log["train_seconds"],
        "train_threads": env.get("THREADS"),
        "train_jobs": env.get("JOBS"),
        "train_finished": os.path.exists(os.path.join(model_dir, "train.done")),
        "train_command": command,
        "generate_flags": gen,
        "valid": [{k: p[k] for k in ("updates", "bleu_tok", "sacrebleu", "chrf", "checkpoint")} for p in valid],
        "valid_loss": log["valid_loss"],
        "test": None if test is None else {"source": test_source, "sentences": test.get("sentences"),
                                           **{k: test[k] for k in ("bleu_tok", "sacrebleu", "chrf")}},
        "examples": examples(test_out, args.raw_dir) if test_out else [],
    }


# ----------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------


def select_models(args):
    """``[(name, folder)]`` in models.sh order (ar first): requested ones, or every trained model folder."""
    nat = shell_value("NAT_MODELS") or []
    known = ["ar"] + nat
    if not os.path.isdir(args.run_dir):
        raise CurveError(f"run directory {args.run_dir} does not exist (train with examples/quickstart/run.sh)")
    if args.models:
        wanted = [m for m in re.split(r"[,\s]+", args.models) if m]
        unknown = [m for m in wanted if m not in known]
        if unknown:
            raise CurveError(f"unknown model {unknown[0]!r} (models.sh knows: {' '.join(known)})")
        missing = [m for m in wanted if not os.path.exists(os.path.join(args.run_dir, m, "train.log"))]
        if missing:
            raise CurveError(f"no training of {missing[0]!r} in {args.run_dir} ({args.run_dir}/{missing[0]}/train.log)")
    else:
        wanted = [m for m in known if os.path.exists(os.path.join(args.run_dir, m, "train.log"))]
        if not wanted:
            raise CurveError(f"no model folder with a train.log in {args.run_dir}")
    return [(m, os.path.join(args.run_dir, m)) for m in sorted(wanted, key=known.index)]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", default="runs/learning_curves", help="folder with one subfolder per model")
    parser.add_argument("--models", help="comma-separated models to include (default: every trained one)")
    parser.add_argument("--every", type=int, default=500, help="updates between curve points [500]")
    parser.add_argument("--levels", default="1,5,10", help="valid BLEU levels to report the first pass of [1,5,10]")
    parser.add_argument("--data-bin", default="data-bin/quickstart", help="binarized data the models were trained on")
    parser.add_argument("--raw-dir", default="data/quickstart/raw", help="raw corpus (valid/test .en/.de)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads of each decoding (OMP_NUM_THREADS); 1 beside running trainings [all cores]")
    parser.add_argument("--python", default=sys.executable, help="python that runs fairseq-generate [this one]")
    parser.add_argument("--output", help="Markdown report; JSON and PNG beside it [RUN_DIR/learning_curves.md]")
    parser.add_argument("--note", help="a remark recorded in the report (e.g. machine load)")
    args = parser.parse_args(argv)
    if args.every < 1 or args.threads < 1:
        raise CurveError("--every and --threads must be positive")
    try:
        args.level_list = [float(x) for x in args.levels.split(",") if x.strip()]
    except ValueError:
        raise CurveError(f"--levels must be numbers separated by commas, got {args.levels!r}") from None
    args.output = args.output or os.path.join(args.run_dir, "learning_curves.md")
    for what, path in (("--data-bin", args.data_bin), ("--raw-dir", args.raw_dir)):
        if not os.path.isdir(path):
            raise CurveError(f"{what} {path} does not exist")
    for split in ("valid", "test"):
        if not os.path.isfile(os.path.join(args.raw_dir, f"{split}.de")):
            raise CurveError(f"{args.raw_dir}/{split}.de is missing")
    # fairseq-generate runs in the repository root (models.sh's --user-dir nat_plugins is relative)
    args.data_bin, args.raw_dir = os.path.abspath(args.data_bin), os.path.abspath(args.raw_dir)
    return args


def main(argv=None):
    command = "python scripts/experiments/learning_curves.py " + " ".join(map(shlex.quote, argv or sys.argv[1:]))
    try:
        args = parse_args(argv)
        models = select_models(args)
        common_gen = shell_value("COMMON_GEN") or []
        plans = {}
        for name, folder in models:
            desc = shell_value(f"MODEL_{name}_DESC")
            plans[name] = {"gen": shell_value(f"MODEL_{name}_GEN") or [], "desc": desc[0] if desc else name,
                           "points": curve_checkpoints(folder, args.every)}
    except CurveError as error:
        print(f"nat_plugins: error: {error}", file=sys.stderr)
        return 2
    import torch

    args.cuda = torch.cuda.is_available()
    decoder = Decoder(args, count_decodings(models, plans, common_gen))
    results = {}
    try:
        for name, folder in models:
            results[name] = collect_model(name, folder, args, decoder, common_gen, plans[name])
    except RuntimeError as error:
        print(f"nat_plugins: error: {error}", file=sys.stderr)
        return 1
    data = report.build(results, args, command, torch.__version__)
    paths = report.write_all(data, args.output)
    print("\n".join(report.summary_lines(data)))
    print(f"(written: {', '.join(paths)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
