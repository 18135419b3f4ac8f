#!/usr/bin/env python3
"""The reproduction suite: controlled experiments that show whether the models learn what their papers say.

    make reproduce                               # everything, 2 parallel 1-thread jobs, report under runs/repro/
    make reproduce REPORT=benchmarks/reproduction.md      # the committed record (md + json + png)
    python scripts/experiments/reproduce.py --only easy/dat --jobs 1  # one run
    python scripts/experiments/reproduce.py --list                    # experiments, budgets and the CPU-time estimate

Each *run* is one model trained on one data preset for a fixed number of updates (``--max-update``: results
do not depend on machine load).  Every ``--curve-every`` updates a checkpoint is kept; after training, each
kept checkpoint is decoded with the run's curve decoding, and the last one with every decoding of the run,
and scored by ``scripts/data/synthetic_multimodality.py evaluate`` against the closest candidate target
(DiffGLAT App. A).  Every kept checkpoint also gets ``valid_min_loss``: its training loss on the validation
split against the closest candidate target, i.e. the minimum over a source's candidates
(``scripts/evaluation/min_candidate_loss.py``, which writes down the deterministic reading per model family),
in bits per target token; a model that commits to one mode is not penalised for the others.  A run resumes
from its checkpoints (fairseq's ``checkpoint_last.pt``), and a decoding or loss already computed is not
redone, so the suite can be stopped and started again.  Runs whose records predate ``valid_min_loss`` get it
with ``--report-only`` too, from their checkpoints, without decoding again.

Outputs: ``REPORT`` (Markdown), ``REPORT`` with ``.json`` (one record per measured cell:
``{"experiment", "system", "metric", "value", "updates"}``, metrics ``token_acc``, ``seq_acc`` and
``mixed_outputs`` in %,
``valid_min_loss`` in bits per target token) and ``.png`` (accuracy against updates per system); the default
REPORT is under ``runs/repro`` (not committed).

The experiments are the table below (``EXPERIMENTS``): a data preset, a model entry of ``MODELS`` and a
budget.  Presets (``PRESETS``): ``full`` is the paper's task at CPU scale (4 modalities, length 32, N = 100,
10k/500/500 pairs; the paper: N = 5000, 100k pairs); ``easy`` is 2 modalities, length 6, N = 10,
4k/200/200; ``sweep_*`` change one factor of ``easy`` towards ``full``.
"""
import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # scripts/, above the job folders
ROOT = os.path.dirname(SCRIPTS)
sys.path[:0] = [p for p in (os.path.join(SCRIPTS, "experiments"), ROOT) if p not in sys.path]

import reproduce_report  # noqa: E402
from reproduce_experiments import EXPERIMENTS, MODELS, PRESETS, SECONDS_PER_UPDATE  # noqa: E402

PY = os.environ.get("PY") or os.path.join(ROOT, ".venv", "bin", "python")
#: where data/, data-bin/ and runs/ go (--work-dir; tests use a temporary folder)
WORK = ROOT
TOOL = os.path.join(SCRIPTS, "data", "synthetic_multimodality.py")
LOSS_TOOL = os.path.join(SCRIPTS, "evaluation", "min_candidate_loss.py")
MIN_LOSS = "valid_min_loss"


def log(message):
    print(f"[repro] {message}", flush=True)


def fairseq_cli(name):
    return [PY, "-c", f"import sys; from fairseq_cli.{name} import cli_main; sys.exit(cli_main())"]


def data_dirs(preset):
    return os.path.join(WORK, "data", "repro", preset, "raw"), os.path.join(WORK, "data-bin", "repro", preset)


def make_data(preset):
    raw, binarized = data_dirs(preset)
    p = PRESETS[preset]
    cmd = [PY, TOOL, "make-data", "--raw-dir", raw, "--dest-dir", binarized, "--num-tokens", str(p["num_tokens"]),
           "--length", str(p["length"]), "--modalities", str(p["modalities"]), "--train", str(p["train"]),
           "--valid", str(p["valid"]), "--test", str(p["test"]), "--seed", "1", "--quiet"]
    subprocess.run(cmd, check=True, env=thread_env(), stdout=subprocess.DEVNULL)


def thread_env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    # Keep freed tensors in the heap instead of unmapping and page-faulting them in again at every update
    # (examples/quickstart/run.sh MALLOC_TUNING): same results, ~20% less training time (issue #20).
    env.setdefault("MALLOC_MMAP_MAX_", "0")
    env.setdefault("MALLOC_TRIM_THRESHOLD_", str(16 << 30))
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def run_dir(exp):
    return os.path.join(WORK, "runs", "repro", exp["preset"], exp["name"])


def train_command(exp):
    raw, binarized = data_dirs(exp["preset"])
    model = MODELS[exp["model"]]
    flags = [f.replace("{raw}", raw) for f in model["train"]]
    every = exp.get("curve_every", 250)
    return fairseq_cli("train") + [
        binarized, *flags, "--max-update", str(exp["updates"]), "--save-dir", run_dir(exp),
        "--save-interval-updates", str(every), "--keep-interval-updates", "-1", "--no-epoch-checkpoints",
        "--validate-interval", "1000", "--validate-interval-updates", str(every), "--log-format", "simple",
        "--log-interval", "50", "--seed", str(exp.get("seed", 1)), "--cpu", "--num-workers", "0",
    ]


def trained_updates(path):
    """Updates of the last 'num_updates N' line of a train.log (0 if none)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            found = re.findall(r"num_updates[ =](\d+)", handle.read())
    except OSError:
        return 0
    return int(found[-1]) if found else 0


def recipe(command):
    """A training command without its update budget and save dir: raising ``--max-update`` resumes a
    run, and a run folder that was moved keeps its identity."""
    words = list(command)
    for flag in ("--max-update", "--save-dir"):
        if flag in words:
            at = words.index(flag)
            del words[at:at + 2]
    return " ".join(words)


def logged_recipe(train_log):
    """The recipe of the last command written into a train.log (None if none)."""
    found = None
    try:
        with open(train_log, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("# "):
                    # "# YYYY-MM-DD HH:MM:SS <argv joined by spaces>"
                    found = recipe(line.rstrip("\n").split(" ", 3)[3].split(" "))
    except (OSError, IndexError):
        return None
    return found


def set_aside_if_stale(exp):
    """Move a run trained with another recipe to ``<dir>.stale-<time>`` (kept, never deleted).

    Without this a changed recipe (flags of ``MODELS``) would silently resume, or report, the old run.
    """
    folder = run_dir(exp)
    old = logged_recipe(os.path.join(folder, "train.log"))
    if old is None or old == recipe(train_command(exp)):
        return
    aside = f"{folder}.stale-{time.strftime('%Y%m%d-%H%M%S')}"
    os.replace(folder, aside)
    print(f"{exp['preset']}/{exp['name']}: the recipe changed; the old run is kept in {aside}", flush=True)


def train(exp, progress):
    set_aside_if_stale(exp)
    folder = run_dir(exp)
    os.makedirs(folder, exist_ok=True)
    train_log = os.path.join(folder, "train.log")
    if trained_updates(train_log) >= exp["updates"] and os.path.exists(os.path.join(folder, "checkpoint_last.pt")):
        return
    with open(train_log, "a", encoding="utf-8") as out:
        out.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(train_command(exp))}\n")
        out.flush()
        proc = subprocess.Popen(train_command(exp), stdout=out, stderr=subprocess.STDOUT, env=thread_env(),
                                cwd=ROOT)
        while proc.poll() is None:
            time.sleep(5)
            progress(exp, trained_updates(train_log))
    if proc.returncode != 0:
        raise RuntimeError(f"{exp['name']}: fairseq-train exited {proc.returncode}; see {train_log}")


def checkpoints(exp):
    """``[(updates, path)]`` of the kept interval checkpoints, then the last one."""
    folder = run_dir(exp)
    found = []
    for name in os.listdir(folder):
        match = re.fullmatch(r"checkpoint_\d+_(\d+)\.pt", name)
        if match and int(match.group(1)) <= exp["updates"]:
            found.append((int(match.group(1)), os.path.join(folder, name)))
    # fairseq writes no interval checkpoint at an update that ends an epoch: the last one stands in
    last = os.path.join(folder, "checkpoint_last.pt")
    reached = trained_updates(os.path.join(folder, "train.log"))
    if os.path.exists(last) and reached == exp["updates"] and reached not in {u for u, _ in found}:
        found.append((reached, last))
    return sorted(found)


def decode_and_score(exp, updates, path, system, gen_flags):
    """Scores one checkpoint with one decoding; cached in ``<run>/eval/<system>_<updates>.json``."""
    out_json = os.path.join(run_dir(exp), "eval", f"{system}_{updates}.json")
    raw, binarized = data_dirs(exp["preset"])
    gen_out = out_json[:-5] + ".generate.out"
    if os.path.exists(out_json):
        with open(out_json, encoding="utf-8") as handle:
            cached = json.load(handle)
        if "mixed_modality_outputs" in cached or not os.path.exists(gen_out):
            return cached
        # scored before the mixing diagnostics existed: score the kept output again (no decoding)
        os.remove(out_json)
    os.makedirs(os.path.dirname(out_json), exist_ok=True)
    cmd = fairseq_cli("generate") + [
        binarized, "--user-dir", os.path.join(ROOT, "nat_plugins"), "--path", path, "--gen-subset", "test",
        "--batch-size", "100", "--required-batch-size-multiple", "1", "--cpu", *gen_flags]
    if not os.path.exists(gen_out):
        with open(gen_out + ".part", "w", encoding="utf-8") as out:
            subprocess.run(cmd, check=True, stdout=out, stderr=subprocess.DEVNULL, env=thread_env())
        os.replace(gen_out + ".part", gen_out)
    subprocess.run([PY, TOOL, "evaluate", gen_out, "--raw-dir", raw, "--json-out", out_json + ".part", "--json"],
                   check=True, stdout=subprocess.DEVNULL, env=thread_env())
    os.replace(out_json + ".part", out_json)
    with open(out_json, encoding="utf-8") as handle:
        return json.load(handle)


def min_loss_json(exp, updates):
    return os.path.join(run_dir(exp), "eval", f"{MIN_LOSS}_{updates}.json")


def valid_min_losses(exp, kept):
    """``{updates: bits per target token}`` of the checkpoints ``kept`` (``[(updates, path)]``).

    The missing ones are computed in one process per run (start-up is most of the cost) and cached in
    ``<run>/eval/valid_min_loss_<updates>.json`` (the whole result: per-candidate losses, argmin shares).
    """
    missing = [(u, p) for u, p in kept if not os.path.exists(min_loss_json(exp, u))]
    if missing:
        raw, binarized = data_dirs(exp["preset"])
        # data made before the candidates files existed gets them here; nothing else in it changes
        subprocess.run([PY, TOOL, "candidates", "--raw-dir", raw], check=True, stdout=subprocess.DEVNULL,
                       env=thread_env())
        out = os.path.join(run_dir(exp), "eval", f"{MIN_LOSS}.all.json")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        proc = subprocess.run([PY, LOSS_TOOL, binarized, "--candidates", os.path.join(raw, "valid.candidates"),
                               "--split", "valid", "--json-out", out, "--path", *[p for _, p in missing]],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=thread_env())
        if proc.returncode != 0:
            raise RuntimeError(f"{exp['name']}: {LOSS_TOOL} exited {proc.returncode}: {proc.stderr[-2000:]}")
        with open(out, encoding="utf-8") as handle:
            results = json.load(handle)
        for updates, path in missing:
            with open(min_loss_json(exp, updates) + ".part", "w", encoding="utf-8") as handle:
                json.dump(dict(results[path], checkpoint=os.path.basename(path)), handle)
            os.replace(min_loss_json(exp, updates) + ".part", min_loss_json(exp, updates))
        os.remove(out)
    losses = {}
    for updates, _ in kept:
        with open(min_loss_json(exp, updates), encoding="utf-8") as handle:
            value = json.load(handle)[MIN_LOSS]
        if value is not None:  # None: no sentence had a finite loss
            losses[updates] = value
    return losses


def add_min_loss(exp, records):
    """``records`` plus a ``valid_min_loss`` record beside every (system, updates) measured without one.

    The loss belongs to the checkpoint, not to the decoding: every decoding of a checkpoint shows the same.
    A checkpoint deleted since it was decoded gets none.
    """
    have = {(r["system"], r["updates"]) for r in records if r["metric"] == MIN_LOSS}
    wanted = sorted({(r["system"], r["updates"]) for r in records} - have, key=lambda k: (k[1], k[0]))
    if not wanted:
        return records
    on_disk = dict(checkpoints(exp))
    losses = valid_min_losses(exp, [(u, on_disk[u]) for u in sorted({u for _, u in wanted}) if u in on_disk])
    return records + [{"experiment": exp["preset"], "system": system, "metric": MIN_LOSS, "value": losses[updates],
                       "updates": updates} for system, updates in wanted if updates in losses]


def try_add_min_loss(exp, records):
    """:func:`add_min_loss`, or ``records`` unchanged (and a log line) when the loss cannot be computed: the
    accuracies must not be lost with it, and the next call of the suite tries again."""
    try:
        return add_min_loss(exp, records)
    except (RuntimeError, subprocess.CalledProcessError, OSError, KeyError, ValueError) as exc:
        log(f"{exp['preset']}/{exp['name']}: {MIN_LOSS} not computed: {exc}")
        return records


def evaluate(exp):
    """Records ``{"experiment", "system", "metric", "value", "updates"}`` of one trained run."""
    model = MODELS[exp["model"]]
    kept = checkpoints(exp)
    if not kept:
        raise RuntimeError(f"{exp['name']}: no interval checkpoint in {run_dir(exp)}")
    records = []
    curve_system = model["decodings"][0][0]
    for updates, path in kept:
        for system, flags in model["decodings"]:
            if system != curve_system and updates != kept[-1][0]:
                continue
            result = decode_and_score(exp, updates, path, system, flags)
            for metric, key in (("token_acc", "token_accuracy"), ("seq_acc", "sequence_accuracy"),
                                ("mixed_outputs", "mixed_modality_outputs")):
                if key in result:
                    records.append({"experiment": exp["preset"], "system": f"{exp['name']}:{system}",
                                    "metric": metric, "value": result[key], "updates": updates})
    return try_add_min_loss(exp, records)


def run_one(exp):
    def progress(exp, done):
        now = time.time()
        state = run_one.state.setdefault(exp["name"], {"t0": now, "u0": done, "last": 0})
        if now - state["last"] < 60:
            return
        state["last"] = now
        rate = (done - state["u0"]) / max(now - state["t0"], 1e-9)
        eta = (exp["updates"] - done) / rate / 60 if rate > 0 else float("nan")
        log(f"{exp['preset']}/{exp['name']}: {done}/{exp['updates']} updates, ETA {eta:.0f} min")

    train(exp, progress)
    records = evaluate(exp)
    path = os.path.join(run_dir(exp), "records.json")
    with open(path + ".part", "w", encoding="utf-8") as handle:
        json.dump(records, handle)
    os.replace(path + ".part", path)
    return records


run_one.state = {}


def selected(only):
    if not only:
        return list(EXPERIMENTS)
    wanted = set(only.split(","))
    chosen = [e for e in EXPERIMENTS if f"{e['preset']}/{e['name']}" in wanted or e["preset"] in wanted]
    if not chosen:
        raise SystemExit(f"reproduce.py: error: --only {only!r} matches no experiment (see --list)")
    return chosen


def estimate(experiments):
    """CPU seconds of the remaining updates, from the measured seconds per update."""
    total = 0.0
    for exp in experiments:
        left = max(exp["updates"] - trained_updates(os.path.join(run_dir(exp), "train.log")), 0)
        total += left * SECONDS_PER_UPDATE[exp["model"]][exp["preset"] == "full" or "length32" in exp["preset"]]
    return total


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2, help="runs trained in parallel, one thread each")
    parser.add_argument("--only", help="comma list of PRESET/NAME or PRESET (default: every experiment)")
    parser.add_argument("--report", default=os.path.join("runs", "repro", "reproduction.md"),
                        help="Markdown report; .json and .png go beside it")
    parser.add_argument("--list", action="store_true", help="list the experiments and the CPU-time estimate")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from the runs' records")
    parser.add_argument("--work-dir", default=ROOT, help="folder that holds data/, data-bin/ and runs/")
    return parser.parse_args(argv)


def main(argv=None):
    global WORK
    args = parse_args(argv)
    WORK = os.path.abspath(args.work_dir)
    experiments = selected(args.only)
    cpu = estimate(experiments)
    for exp in experiments:
        log(f"{exp['preset']:>14}/{exp['name']:<16} {exp['model']:<14} {exp['updates']:>5} updates")
    log(f"estimated CPU time still to train: {cpu / 3600:.1f} h on one thread "
        f"(~{cpu / 3600 / max(args.jobs, 1):.1f} h with {args.jobs} jobs; decoding adds a few minutes per run)")
    if args.list:
        return 0
    if not args.report_only:
        for preset in sorted({e["preset"] for e in experiments}):
            make_data(preset)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
            futures = {pool.submit(run_one, exp): exp for exp in experiments}
            for future in concurrent.futures.as_completed(futures):
                exp = futures[future]
                try:
                    future.result()
                    log(f"{exp['preset']}/{exp['name']}: done")
                except (RuntimeError, subprocess.CalledProcessError) as exc:
                    log(f"{exp['preset']}/{exp['name']}: FAILED: {exc}")
    records = []
    for exp in EXPERIMENTS:
        path = os.path.join(run_dir(exp), "records.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                run_records = json.load(handle)
            if exp in experiments:  # records written before valid_min_loss existed get it now
                updated = try_add_min_loss(exp, run_records)
                if len(updated) != len(run_records):
                    with open(path + ".part", "w", encoding="utf-8") as handle:
                        json.dump(updated, handle)
                    os.replace(path + ".part", path)
                run_records = updated
            records.extend(run_records)
    reproduce_report.write(args.report, records, EXPERIMENTS, MODELS, PRESETS, data_dirs, run_dir,
                           " ".join(["python", "scripts/experiments/reproduce.py"] + (argv if argv is not None else sys.argv[1:])))
    log(f"report: {args.report} (+ .json, .png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
