"""Mask-predict decoding speed and peak memory: the plugin's generator (masked-only projection), the
same generator with the former full ``[N, L, V]`` log-softmax step, and stock fairseq's
``IterativeRefinementGenerator`` on its ``cmlm_transformer``.

All three decode the same synthetic batch with models of the quickstart size (2+2 layers x 128,
shared embeddings, ``--vocab`` symbols) and the same work: ``--iterations`` decoder passes
(fairseq: ``--iter-decode-max-iter ITER-1 --iter-decode-force-max-iter``) on the same three
length candidates ``L-1, L, L+1`` per source, ``L`` = the source length (both models' length
predictors are replaced by that rule: untrained predictors would give the two models different
lengths, and so different work).  Weights are random: with a fixed number of passes the cost of a
pass does not depend on them.  Runs are interleaved (order alternating per repetition) and
compared by CPU time of this single-threaded process (the wall clock on a shared machine also
counts other processes); peak memory is the resident-set high-water mark added during one
generate call.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python scripts/benchmarks/profile_decoding.py --reps 3
"""
import argparse
import os
import statistics
import sys
import time

import torch
from fairseq.data import Dictionary
from fairseq.iterative_refinement_generator import IterativeRefinementGenerator
from fairseq.models.nat.cmlm_transformer import CMLMNATransformerModel, cmlm_base_architecture

from nat_plugins.decoding import mask_predict
from nat_plugins.decoding.generator import NATGenerator
from nat_plugins.decoding.mask_predict import MaskPredict
from nat_plugins.decoding.strategy import DecodingOptions
from nat_plugins.models.cmlm import CMLMModel, cmlm_small

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_timing import PeakMemory  # noqa: E402

SIZE = dict(encoder_layers=2, decoder_layers=2, encoder_embed_dim=128, decoder_embed_dim=128,
            encoder_ffn_embed_dim=512, decoder_ffn_embed_dim=512, encoder_attention_heads=4,
            decoder_attention_heads=4, share_all_embeddings=True, dropout=0.1,
            max_source_positions=256, max_target_positions=256)


class _Task:
    def __init__(self, d):
        self.source_dictionary = self.target_dictionary = d


def unfused_masked_predictions(model, tokens, encoder_out, masked):
    """The step before issue #20: a log-softmax over every position, then the masked ones."""
    scores, best = model.refine_logprobs(tokens, encoder_out).max(-1)
    return scores[masked], best[masked]


def build(vocab, seed):
    d = Dictionary()
    for i in range(vocab - len(d)):
        d.add_symbol(f"w{i}")
    torch.manual_seed(seed)
    ours_args = argparse.Namespace(**SIZE)
    cmlm_small(ours_args)
    stock_args = argparse.Namespace(**SIZE, apply_bert_init=True)
    cmlm_base_architecture(stock_args)
    return d, CMLMModel.build_model(ours_args, _Task(d)).eval(), CMLMNATransformerModel.build_model(stock_args, _Task(d)).eval()


def fix_lengths(ours, stock):
    """Both models predict ``L`` = source length; three candidates ``L-1, L, L+1``."""
    def ours_lengths(encoder_out, src_tokens, k=1):
        L = ours.source_lengths(src_tokens).clamp(min=2)
        cand = L[:, None] + torch.arange(k)[None, :] - k // 2
        return cand.clamp(min=1), torch.zeros(cand.shape)

    def stock_length(length_out, encoder_out, tgt_tokens=None):
        real = ~encoder_out["encoder_padding_mask"][0]  # [B, S]: content and </s>
        return (real.sum(1) - 1).clamp(min=2) + 2  # stock canvases carry <s> and </s>

    ours.predict_lengths = ours_lengths
    stock.decoder.forward_length_prediction = stock_length


def make_batch(d, bsz, min_len, max_len, seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (bsz,), generator=g)
    S = int(lengths.max()) + 1
    src = torch.full((bsz, S), d.pad())
    for i, n in enumerate(lengths.tolist()):
        src[i, S - n - 1:-1] = torch.randint(d.nspecial, len(d), (n,), generator=g)
        src[i, -1] = d.eos()
    return {"net_input": {"src_tokens": src, "src_lengths": lengths + 1}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for option, default in (("vocab", 8000), ("batch-size", 128), ("min-len", 4), ("max-len", 30),
                            ("iterations", 10), ("length-beam", 3), ("reps", 3), ("seed", 1)):
        p.add_argument(f"--{option}", type=int, default=default)
    a = p.parse_args(argv)
    d, ours, stock = build(a.vocab, a.seed)
    fix_lengths(ours, stock)
    sample = make_batch(d, a.batch_size, a.min_len, a.max_len, a.seed)
    opts = DecodingOptions(iterations=a.iterations, length_beam=a.length_beam)
    gen_ours = NATGenerator(d, MaskPredict(opts))
    gen_stock = IterativeRefinementGenerator(d, max_iter=a.iterations - 1, beam_size=a.length_beam, adaptive=False)
    fused = mask_predict.masked_predictions

    def run_ours(fused_step):
        mask_predict.masked_predictions = fused if fused_step else unfused_masked_predictions
        try:
            return gen_ours.generate([ours], sample)
        finally:
            mask_predict.masked_predictions = fused

    systems = {
        "ours (masked-only projection)": lambda: run_ours(True),
        "ours (full log-softmax, before)": lambda: run_ours(False),
        "stock fairseq cmlm_transformer": lambda: gen_stock.generate([stock], sample),
    }
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, vocab {len(d)}, batch {a.batch_size}, "
          f"{a.iterations} iterations x {a.length_beam} lengths, source lengths {a.min_len}-{a.max_len}")
    with torch.no_grad():
        hyps = {}
        for name, fn in systems.items():  # warm-up; keep hypotheses to compare
            hyps[name] = [h[0]["tokens"].tolist() for h in fn()]
        names = list(systems)
        same = sum(x == y for x, y in zip(hyps[names[0]], hyps[names[1]]))
        print(f"identical best hypotheses, ours vs ours before: {same}/{len(hyps[names[0]])}")
        cpu = {k: [] for k in systems}
        wall = {k: [] for k in systems}
        peaks = {k: [] for k in systems}
        for rep in range(a.reps):
            for name in (names if rep % 2 == 0 else names[::-1]):
                with PeakMemory() as mem:
                    c0, w0 = time.process_time(), time.perf_counter()
                    systems[name]()
                    cpu[name].append(time.process_time() - c0)
                    wall[name].append(time.perf_counter() - w0)
                peaks[name].append(mem.mib)
    stock = names[2]
    print("| System | CPU s per batch (median) | wall s (median) | speed vs stock, CPU time (median of per-repetition ratios) "
          "| peak added MiB (median) |")
    print("|---|---|---|---|---|")
    for name in names:
        speed = statistics.median(s / t for s, t in zip(cpu[stock], cpu[name]))
        print(f"| {name} | {statistics.median(cpu[name]):.3f} | {statistics.median(wall[name]):.3f} | {speed:.2f}x "
              f"| {statistics.median(peaks[name]):.0f} |")
    for name in names:
        print(f"{name}: CPU s per repetition " + " ".join(f"{t:.3f}" for t in cpu[name]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
