#!/usr/bin/env python3
"""Batch-1 decoding on exported passes vs eager, per runtime: why ONNX Runtime is the default.

Builds quickstart-size models in-process (``cmlm_small``, ``dat_small`` with lambda 4,
``diffglat_small``: 2+2 layers x 128, random weights, a ``--vocab``-word joined
dictionary, a length predictor that proposes the source length) and translates random sources of ``--src-len`` words one at a time
with the quickstart's decoding flags (CMLM 10 iterations x 3 lengths, and one pass;
DAT lookahead; DiffGLAT joint-Viterbi over 3 passes), through the shared generator on:

* ``eager``: the model itself (what ``fairseq-generate`` runs);
* ``torchscript``: the passes traced and frozen;
* ``onnxruntime``: the passes exported to ONNX and run by ONNX Runtime;
* ``onnxruntime int8`` (ours): the same with int8 weight matrices (may change outputs).

One thread; rounds interleave the runtimes so load drifts hit all alike; the
median per-sentence time over rounds is reported with its ratio to eager.
Every float32 runtime must give eager's hypotheses (checked; the run fails otherwise).
Random weights: the work per sentence (passes, path length) is the same for
every runtime, so ratios are meaningful; absolute times are not those of a
trained model.  Trained checkpoints: ``make bench`` (its fast-path rows).

Measured 2026-12-03 by ``OMP_NUM_THREADS=1 python scripts/benchmarks/benchmark_passes.py --rounds 5
--sentences 20`` on a shared 2-core AMD EPYC VM under heavy load from other jobs (load
average 10-24; ratios only), torch 2.13.0+cpu, onnxruntime 1.32.0 (ms/sentence inflated):

==========  ======  ===========  ===========  ================
model       eager   TorchScript  ONNX Runt.   ONNX Runt. int8
==========  ======  ===========  ===========  ================
cmlm        197.4   1.00x        0.54x        0.39x (12/20 same)
cmlm1        16.5   0.75x        0.65x        0.49x
dat          24.1   0.86x        0.57x        0.48x
diffglat     49.1   0.86x        0.71x        0.54x (15/20 same)
==========  ======  ===========  ===========  ================
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the checkout

MODELS = {
    # name: (model module, class, arch function, DecodingOptions kwargs, strategy)
    "cmlm": ("cmlm", "CMLMModel", "cmlm_small", dict(iterations=10, length_beam=3), "mask_predict"),
    "cmlm1": ("cmlm", "CMLMModel", "cmlm_small", dict(iterations=1, length_beam=1), "mask_predict"),
    "dat": ("dat", "DATModel", "dat_small", dict(extra={"decode_beta": 1.0}), "dag_lookahead"),
    "diffglat": ("diffglat", "DiffGLATModel", "diffglat_small", dict(iterations=3), "dag_joint_viterbi"),
}


def build(name, vocab, src_len, seed=0):
    """A quickstart-size model of ``name`` with ``vocab`` words, eval mode, decoding options applied."""
    import argparse as ap
    import importlib

    import torch
    from fairseq.data import Dictionary

    import nat_plugins  # noqa: F401
    from nat_plugins.decoding.strategy import DecodingOptions

    module, cls, arch, opts, strategy = MODELS[name]
    mod = importlib.import_module(f"nat_plugins.models.{module}")
    dictionary = Dictionary()
    for i in range(vocab):
        dictionary.add_symbol(f"w{i}")
    args = ap.Namespace(dropout=0.0, upsample_scale="4" if name == "dat" else None)
    getattr(mod, arch)(args)
    torch.manual_seed(seed)

    class Task:
        source_dictionary = target_dictionary = dictionary

    model = getattr(mod, cls).build_model(args, Task()).eval()
    predictor = getattr(model, "length_predictor", None)
    if predictor is not None:
        # Random weights would propose lengths up to 255; a trained model proposes about
        # the source length, so here the top 3 are src_len, src_len -+ 1 (a bias, zero weights).
        proj = torch.nn.Linear(predictor.proj.in_features, predictor.proj.out_features)
        torch.nn.init.zeros_(proj.weight)
        with torch.no_grad():
            proj.bias.copy_(-(torch.arange(proj.out_features) - src_len).abs().float())
        predictor.proj = proj
    options = DecodingOptions(**opts)
    if hasattr(model, "prepare_for_decoding"):
        model.prepare_for_decoding(options)
    return model, dictionary, options, strategy


def samples(dictionary, count, src_len, seed=1):
    import torch

    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        words = torch.randint(dictionary.nspecial, len(dictionary), (1, src_len), generator=g)
        src = torch.cat([words, torch.full((1, 1), dictionary.eos())], 1)
        out.append({"net_input": {"src_tokens": src, "src_lengths": torch.tensor([src_len + 1])}})
    return out


def measure(name, args):
    import torch

    from nat_plugins.decoding.generator import NATGenerator
    from nat_plugins.decoding.strategy import STRATEGIES
    from nat_plugins.export.fast_model import exported_model
    from nat_plugins.export.runtime import available_backends

    model, dictionary, options, strategy = build(name, args.vocab, args.src_len)
    generator = NATGenerator(dictionary, STRATEGIES[strategy](options))
    views = {"eager": model}
    for backend in available_backends():
        views[backend] = exported_model(model, backend, threads=1)
    if "onnxruntime" in views:
        views["onnxruntime int8"] = exported_model(model, "onnxruntime", threads=1, quantize="int8")
    inputs = samples(dictionary, args.sentences, args.src_len)
    outputs, same = {}, {}
    for runtime, view in views.items():  # warm-up, and the identity check (int8 may differ: counted)
        outputs[runtime] = [generator.generate([view], s)[0][0]["tokens"].tolist() for s in inputs]
        same[runtime] = sum(a == b for a, b in zip(outputs[runtime], outputs["eager"]))
        if "int8" not in runtime and same[runtime] != len(inputs):
            raise SystemExit(f"{name}: {runtime} hypotheses differ from eager")
    per_round = {r: [] for r in views}
    for rnd in range(args.rounds):
        order = list(views)[rnd % len(views):] + list(views)[:rnd % len(views)]
        for runtime in order:
            start = time.perf_counter()
            with torch.no_grad():
                for s in inputs:
                    generator.generate([views[runtime]], s)
            per_round[runtime].append((time.perf_counter() - start) / len(inputs) * 1e3)
    eager = statistics.median(per_round["eager"])
    return [(name, r, statistics.median(t), statistics.median(t) / eager, f"{same[r]}/{len(inputs)}")
            for r, t in per_round.items()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="cmlm,cmlm1,dat,diffglat",
                        help="comma-separated: cmlm, cmlm1 (one pass, one length), dat, diffglat")
    parser.add_argument("--vocab", type=int, default=8000, help="dictionary words (8000, as the quickstart's BPE)")
    parser.add_argument("--src-len", type=int, default=20, help="source words per sentence (20)")
    parser.add_argument("--sentences", type=int, default=20, help="sentences per round (20)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}")
    print("| Model | Runtime | ms / sentence (median of rounds) | vs eager | same output as eager |")
    print("|---|---|---|---|---|")
    for name in names:
        for model, runtime, ms, ratio, same in measure(name, args):
            print(f"| {model} | {runtime} | {ms:.2f} | {ratio:.2f}x | {same} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
