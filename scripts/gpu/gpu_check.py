#!/usr/bin/env python
"""Steps of scripts/gpu/gpu_check.sh (the one-run GPU evidence script); see benchmarks/gpu/README.md.

Sub-commands (each writes JSON under --out):

* ``env``      machine, versions, date                           -> env.json
* ``kernels``  build the CUDA extension (timed) and self-check it -> kernels.json
               (``--dry-run``: the CPU shim of tests/cuda_shim stands in for the build)
* ``tiny``     each op once on a tiny batch with impl="cuda", for compute-sanitizer
               (``--dry-run``: on the CPU through the shim)
* ``models``   train, decode the test split and score, per model   -> model_<name>.json
* ``report``   every JSON of --out into results.json and results.md

Imports torch and nat_plugins.ops at most, except ``models`` (fairseq).
"""
import argparse
import datetime
import glob
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts", "evaluation"))  # score.py

# --------------------------------------------------------------------------- models
# Base-size models (6+6 x 512, the papers' base) for the GPU run; tiny ones for --dry-run.
# The decoding choices follow examples/quickstart/models.sh.
MODELS = {
    "ar": dict(train=["--task", "translation", "--arch", "transformer", "--share-all-embeddings",
                      "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"],
               tiny=["--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "32",
                     "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
                     "--encoder-attention-heads", "2", "--decoder-attention-heads", "2"],
               gen=["--task", "translation", "--beam", "4", "--max-len-a", "1.2", "--max-len-b", "10"]),
    "cmlm": dict(train=["--task", "nat_translation", "--arch", "cmlm_{size}", "--criterion", "cmlm_loss"],
                 gen=["--task", "nat_translation", "--decode-iterations", "10", "--length-beam", "3"]),
    "sundae": dict(train=["--task", "nat_translation", "--arch", "sundae_{size}", "--criterion", "sundae_loss"],
                   gen=["--task", "nat_translation", "--decode-iterations", "8", "--decode-temperature", "0.5",
                        "--decode-samples", "2", "--decode-seed", "1"]),
    "dat": dict(train=["--task", "nat_translation", "--arch", "dat_{size}", "--criterion", "dag_loss",
                       "--upsample-scale", "4", "--glance-p", "0.5:0.1@200k"],
                gen=["--task", "nat_translation", "--decoding-strategy", "dag_lookahead", "--decode-beta", "1.0"]),
    # Warm-up a third of the updates (Appendix E's proportion), so the diffusion phase runs too.
    "diffglat": dict(train=["--task", "nat_translation", "--arch", "diffglat_{size}", "--criterion", "diffglat_loss",
                            "--upsample-scale", "4", "--diffusion-iterations", "3", "--glance-alpha", "0.5:0.1@200k",
                            "--diffusion-process", "modality", "--diffusion-warmup-updates", "{warmup}"],
                     gen=["--task", "nat_translation", "--decoding-strategy", "dag_joint_viterbi",
                          "--decode-iterations", "3", "--decode-viterbi-beta", "1.0"]),
}
COMMON_TRAIN = ["--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--clip-norm", "1.0", "--lr", "1e-3",
                "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "{warmup_lr}", "--warmup-init-lr", "1e-7",
                "--dropout", "0.1", "--weight-decay", "0.0", "--max-source-positions", "256",
                "--max-target-positions", "256", "--seed", "1", "--num-workers", "0", "--disable-validation",
                "--no-epoch-checkpoints", "--no-save-optimizer-state", "--log-format", "simple",
                "--log-interval", "50"]


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- env
def cmd_env(args):
    import torch

    info = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "cpu_cores": os.cpu_count(), "platform": platform.platform(), "dry_run": args.dry_run}
    try:
        info["nvcc"] = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
    except OSError:
        info["nvcc"] = None
    try:
        info["git_commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                                            text=True).stdout.strip() or None
    except OSError:
        info["git_commit"] = None
    _write_json(os.path.join(args.out, "env.json"), info)
    print(json.dumps(info, indent=2))
    return 0


# --------------------------------------------------------------------------- kernels
def _use_shim():
    """Patch the CPU shim in as the CUDA extension (dry run); returns its build time."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "cuda_shim"))
    import shim_ext
    from nat_plugins.ops import dag_cuda

    t0 = time.time()
    ext = shim_ext.build()
    dag_cuda.load_extension = lambda: ext
    return time.time() - t0


def cmd_kernels(args):
    import torch

    from nat_plugins.ops import cuda_build
    from nat_plugins.ops.self_check import check_ops

    res = {"dry_run": args.dry_run}
    t0 = time.time()
    try:
        if args.dry_run:
            res["build_s"] = _use_shim()
            res["built"] = "CPU shim (tests/cuda_shim), not nvcc"
            device = torch.device("cpu")
        else:
            cuda_build.load_extension(verbose=False)
            res["build_s"] = time.time() - t0
            res["built"] = cuda_build.cache_dir()
            device = torch.device("cuda")
    except Exception as exc:  # a build failure is a result to report, not a crash of the run
        res.update(build_s=time.time() - t0, built=None, error=str(exc)[-3000:])
        _write_json(os.path.join(args.out, "kernels.json"), res)
        print(res["error"], file=sys.stderr)
        return 1
    res["self_check"] = check_ops(device)
    res["self_check_passed"] = all(v is None for v in res["self_check"].values())
    _write_json(os.path.join(args.out, "kernels.json"), res)
    print(json.dumps(res, indent=2))
    return 0 if res["self_check_passed"] else 1


def cmd_tiny(args):
    """Every kernel once on a tiny batch (P > 32 so alignment/Viterbi use several warps)."""
    import torch

    if args.dry_run:
        _use_shim()
        dev = "cpu"
    else:
        dev = "cuda"
    from nat_plugins.ops import dag_cuda
    from nat_plugins.ops.self_check import self_check_batch

    g = torch.Generator().manual_seed(0)
    P_len, T_len = torch.tensor([40, 33, 5]), torch.tensor([7, 3, 5])
    match = torch.randn(3, 7, 40, generator=g).log_softmax(-1).to(dev)
    links = torch.randn(3, 40, 40, generator=g).log_softmax(-1).to(dev)
    for m, l, p, t in ((match, links, P_len, T_len), self_check_batch(dev)[:4]):
        for dtype in (torch.float32, torch.float16):
            mm = m.to(dtype).requires_grad_()
            y = dag_cuda.dag_log_likelihood_cuda(mm, l.to(dtype), p, t)
            y.nan_to_num(neginf=0.0).sum().backward()
            dag_cuda.dag_best_alignment_cuda(m.to(dtype), l.to(dtype), p, t)
            for norm in ("transitions", "vertices"):
                dag_cuda.dag_viterbi_cuda(l.to(dtype), m[:, 0].float().contiguous(), p, torch.minimum(p, torch.tensor(9)),
                                          1.0, norm)
    if dev == "cuda":
        torch.cuda.synchronize()
    print("tiny batch: all kernels ran")
    return 0


# --------------------------------------------------------------------------- models
def _model_argv(name, data, save_dir, updates, dry_run, amp):
    spec = MODELS[name]
    size = "tiny" if dry_run else "base"
    fill = dict(size=size, warmup=str(max(1, updates // 3)), warmup_lr=str(max(1, min(400, updates // 4))))
    train = [a.format(**fill) for a in spec["train"]]
    if dry_run:
        train += spec.get("tiny", [])
    argv = [data, "--user-dir", os.path.join(ROOT, "nat_plugins"), *train,
            *[a.format(**fill) for a in COMMON_TRAIN], "--max-update", str(updates), "--save-dir", save_dir,
            "--max-tokens", "1024" if dry_run else "8192"]
    if dry_run:
        argv += ["--cpu"]
    elif amp:
        argv += ["--amp"]
    return argv


def _train(argv, stop_minutes):
    from fairseq import options
    from fairseq_cli import train

    if stop_minutes:
        argv = argv + ["--stop-time-hours", f"{stop_minutes / 60:.5f}"]
    parser = options.get_training_parser()
    train.main(options.parse_args_and_arch(parser, argv))


def _generate(argv, out_path):
    import contextlib

    from fairseq import options
    from fairseq_cli import generate

    parser = options.get_generation_parser()
    args = options.parse_args_and_arch(parser, argv)
    with open(out_path, "w") as f, contextlib.redirect_stdout(f):
        generate.main(args)


def _last_update(save_dir):
    from nat_plugins.compat import load_checkpoint_file  # the safe (weights-only) unpickler

    state = load_checkpoint_file(os.path.join(save_dir, "checkpoint_last.pt"))
    return int(state.get("optimizer_history", [{}])[-1].get("num_updates", -1))


def run_model(name, args):
    import score

    res = {"model": name, "updates_requested": args.updates, "dry_run": args.dry_run, "amp": not args.dry_run}
    work = os.path.join(args.work, name)
    os.makedirs(work, exist_ok=True)
    save = os.path.join(work, "checkpoints")
    t0 = time.time()
    try:
        argv = _model_argv(name, args.data, save, args.updates, args.dry_run, amp=True)
        res["train_command"] = "fairseq-train " + " ".join(argv)
        _train(argv, args.stop_minutes)
        res["train_s"] = time.time() - t0
        res["updates_done"] = _last_update(save)
        ckpt = os.path.join(save, "checkpoint_last.pt")
        gen = ([args.data, "--user-dir", os.path.join(ROOT, "nat_plugins"), "--path", ckpt, "--gen-subset", "test",
                "--batch-size", "256", "--required-batch-size-multiple", "1", "--remove-bpe"]
               + MODELS[name]["gen"] + (["--cpu"] if args.dry_run else []))
        res["generate_command"] = "fairseq-generate " + " ".join(gen)
        t1 = time.time()
        gen_out = os.path.join(args.out, f"generate_{name}.out")
        _generate(gen, gen_out)
        res["generate_s"] = time.time() - t1
        res["score"] = _score(score, gen_out, args.raw_ref)
    except Exception as exc:  # one model's failure must not cost the others their run
        import traceback

        res["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()[-2000:]
        traceback.print_exc()
    res["wall_s"] = time.time() - t0
    _write_json(os.path.join(args.out, f"model_{name}.json"), res)
    return res


def _score(score, gen_out, raw_ref):
    """scripts/evaluation/score.py's JSON for a fairseq-generate output (tokenized BLEU, sacreBLEU, chrF)."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = score.main([gen_out, "--lang", "de", "--json"] + (["--raw-ref", raw_ref] if raw_ref else []))
    if rc != 0:
        raise RuntimeError(f"score.py failed with status {rc}")
    return json.loads(buf.getvalue())


def cmd_models(args):
    failed = 0
    for name in args.names.split(","):
        res = run_model(name, args)
        failed += "error" in res
        print(json.dumps({k: v for k, v in res.items() if "command" not in k}, indent=2))
    return 1 if failed else 0


# --------------------------------------------------------------------------- report
def cmd_report(args):
    out = args.out
    results = {}
    for path in sorted(glob.glob(os.path.join(out, "*.json"))):
        if os.path.basename(path) in ("results.json",):
            continue
        with open(path) as f:
            results[os.path.splitext(os.path.basename(path))[0]] = json.load(f)
    steps_path = os.path.join(out, "steps.tsv")
    steps = []
    if os.path.exists(steps_path):
        with open(steps_path) as f:
            steps = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    results["steps"] = [dict(zip(("step", "status", "seconds"), s)) for s in steps]
    _write_json(os.path.join(out, "results.json"), results)
    env = results.get("env", {})
    lines = ["# GPU check (scripts/gpu/gpu_check.sh)", "",
             f"- Date: {env.get('date_utc')}; commit {env.get('git_commit')}",
             f"- Machine: {env.get('gpu') or 'no GPU'}; {env.get('cpu_cores')} CPU cores; Python {env.get('python')}; "
             f"torch {env.get('torch')} (CUDA {env.get('torch_cuda')}); {env.get('nvcc')}",
             f"- Dry run (CPU, tiny sizes, nothing measured): {env.get('dry_run')}", "",
             "## Steps", "", "| Step | Status | Seconds |", "|---|---|---|"]
    lines += [f"| {s['step']} | {s['status']} | {s['seconds']} |" for s in results["steps"]]
    k = results.get("kernels")
    if k:
        lines += ["", "## Kernels", "", f"- Built: {k.get('built')} in {k.get('build_s', 0):.1f} s",
                  f"- Self-check: {k.get('self_check')}" + (f"\n- Error: {k['error']}" if "error" in k else "")]
    g = results.get("dag_ops", {}).get("gpu")
    if g:
        lines += ["", "## Op benchmarks (scripts/benchmarks/bench_dag_ops.py; full table in dag_ops.md)", "",
                  f"- joint-Viterbi P=256, batch 256: {g['viterbi_sentences_per_s']:.0f} sentences/s (goal ≥ 10,000)",
                  f"- joint-Viterbi batch 1: {g['viterbi_b1_speedup']:.1f}× the reference toolkit's Python loop "
                  f"(goal ≥ 20×)",
                  f"- likelihood memory: peak {g['loss_gpu_peak_mb']:.1f} MB, bound {g['loss_gpu_bound_mb']:.1f} MB, "
                  f"met: {g['loss_gpu_memory_met']}"]
    models = [v for key, v in results.items() if key.startswith("model_")]
    if models:
        lines += ["", "## Models (quickstart corpus, test split)", "",
                  "| Model | Updates | Train s | Decode s | BLEU (tok) | sacreBLEU | chrF | Error |",
                  "|---|---|---|---|---|---|---|---|"]
        for m in models:
            sc = m.get("score") or {}
            lines.append(f"| {m['model']} | {m.get('updates_done', '-')}/{m['updates_requested']} | "
                         f"{m.get('train_s', 0):.0f} | {m.get('generate_s', 0):.1f} | {sc.get('bleu_tok', '-')} | "
                         f"{sc.get('sacrebleu', '-')} | {sc.get('chrf', '-')} | {m.get('error', '')[:80]} |")
        lines += ["", "Commands: `train_command` / `generate_command` in each model_<name>.json."]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["env", "kernels", "tiny", "models", "report"])
    ap.add_argument("--out", required=True, help="results folder")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes")
    ap.add_argument("--names", default=",".join(MODELS), help="models: comma-separated")
    ap.add_argument("--data", help="binarized corpus (models)")
    ap.add_argument("--raw-ref", help="untokenized test references (models)")
    ap.add_argument("--work", help="scratch folder for checkpoints (models)")
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--stop-minutes", type=float, default=0, help="time fuse per training (0: none)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    return {"env": cmd_env, "kernels": cmd_kernels, "tiny": cmd_tiny, "models": cmd_models,
            "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
