"""Time one training update of DA-Transformer against one of CMLM, and break the DAT update down.

Settings are the quickstart's (``examples/quickstart/models.sh``): ``dat_small`` / ``cmlm_small``
(2+2 layers x 128, shared embeddings), ``--upsample-scale 4``, glancing 0.5, label smoothing 0.1,
dropout 0.1, Adam, ``--max-tokens 4096``.  Batches are synthetic (random tokens from a
``--vocab``-symbol dictionary) with the shape of fairseq's length-bucketed batches: every batch
holds sentences of about one source length ``S`` (drawn in ``[--min-len, --max-len]``), targets
``S + U{-3..3}`` long, as many sentences as ``--max-tokens`` allows.  Token values do not change
the cost of either update.

The DAT update also runs with the DAG loss's vocabulary steps as they were before issue #20
(``dat_before``: ``torch.logsumexp`` + gather, a separate argmax), on the same model.

Timing runs the systems back to back on each batch (the order alternates) and compares CPU
time of this single-threaded process, so that load on a shared machine hits all alike; the
DAT/CMLM ratio is reported per batch and as the median.  The
breakdown wraps the model's and the criterion's pieces with CPU clocks (forward, split into the
no-grad glancing pass and the gradient pass) and lists the profiler's top operators of the whole
update.  Run it with ``OMP_NUM_THREADS=1``::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python scripts/benchmarks/profile_training.py --reps 5
"""
import argparse
import collections
import functools
import os
import statistics
import sys
import time

import torch
from fairseq.data import Dictionary

from nat_plugins.criterions import dag_loss as dag_loss_mod
from nat_plugins.criterions.cmlm_loss import CMLMLoss
from nat_plugins.criterions.dag_loss import DAGLoss
from nat_plugins.models.cmlm import CMLMModel, cmlm_small
from nat_plugins.models.dat import DATModel, dat_small


class _Task:
    def __init__(self, d):
        self.source_dictionary = self.target_dictionary = d


def build(vocab, seed):
    d = Dictionary()
    for i in range(vocab - len(d)):
        d.add_symbol(f"w{i}")
    task = _Task(d)
    common = dict(dropout=0.1, max_source_positions=256, max_target_positions=256, share_all_embeddings=True)
    torch.manual_seed(seed)
    cmlm_args = argparse.Namespace(**common)
    cmlm_small(cmlm_args)
    dat_args = argparse.Namespace(upsample_scale="4", **common)
    dat_small(dat_args)
    cmlm = CMLMModel.build_model(cmlm_args, task)
    dat = DATModel.build_model(dat_args, task)
    dag = DAGLoss(task, glance_p="0.5:0.1@200k")
    return d, {
        "dat": (dat, dag),
        "cmlm": (cmlm, CMLMLoss(task, label_smoothing=0.1)),
        "dat_before": (dat, Unfused(dag)),
    }


def make_batches(d, n, max_tokens, min_len, max_len, seed):
    g = torch.Generator().manual_seed(seed)
    nspecial, vocab = d.nspecial, len(d)
    batches = []
    for _ in range(n):
        s = int(torch.randint(min_len, max_len + 1, (), generator=g))
        tgt_lens = (s + torch.randint(-3, 4, (max_tokens,), generator=g)).clamp(min=2)
        bsz = max_tokens // (max(s, int(tgt_lens.max())) + 1)
        tgt_lens = tgt_lens[:bsz]
        src = torch.randint(nspecial, vocab, (bsz, s + 1), generator=g)
        src[:, -1] = d.eos()
        T = int(tgt_lens.max()) + 1
        tgt = torch.randint(nspecial, vocab, (bsz, T), generator=g)
        pos = torch.arange(T)[None, :]
        tgt = tgt.masked_fill(pos == tgt_lens[:, None], d.eos()).masked_fill(pos > tgt_lens[:, None], d.pad())
        batches.append({"net_input": {"src_tokens": src, "src_lengths": torch.full((bsz,), s + 1)},
                        "target": tgt, "ntokens": int(tgt.ne(d.pad()).sum())})
    return batches


def unfused_match(token_logits, target):
    """``dag_loss.target_match`` before issue #20: gather, then subtract ``torch.logsumexp``."""
    logits = token_logits.float()
    B, P, _ = logits.shape
    picked = logits.gather(-1, target[:, None, :].expand(B, P, target.size(1)))
    return (picked - torch.logsumexp(logits, dim=-1, keepdim=True)).transpose(1, 2)


class Unfused:
    """Runs the DAG loss with its vocabulary steps as they were before issue #20."""

    def __init__(self, crit):
        self.crit = crit

    def __call__(self, model, batch):
        saved = dag_loss_mod.target_match, dag_loss_mod.glancing_scores
        dag_loss_mod.target_match = unfused_match
        dag_loss_mod.glancing_scores = lambda logits, target: (unfused_match(logits, target), logits.argmax(-1))
        try:
            return self.crit(model, batch)
        finally:
            dag_loss_mod.target_match, dag_loss_mod.glancing_scores = saved


def update(model, crit, opt, batch):
    opt.zero_grad(set_to_none=True)
    loss, _, _ = crit(model, batch)
    loss.backward()
    opt.step()


class Clocks:
    """CPU time per label, split by grad mode, of wrapped callables (outermost call only)."""

    def __init__(self):
        self.total = collections.defaultdict(float)
        self.depth = 0
        self.wrapped = []

    def restore(self):
        for owner, name, had, fn in reversed(self.wrapped):
            if had:
                setattr(owner, name, fn)
            else:
                delattr(owner, name)  # an instance attribute shadowing the class's method
        self.wrapped.clear()

    def wrap(self, owner, name, label):
        fn = getattr(owner, name, None)
        if fn is None:
            return

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if self.depth:
                return fn(*args, **kwargs)
            self.depth += 1
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth -= 1
                mode = "grad" if torch.is_grad_enabled() else "no grad"
                self.total[(label, mode)] += time.process_time() - start

        self.wrapped.append((owner, name, name in vars(owner), fn))
        setattr(owner, name, timed)


def breakdown(name, model, crit, opt, batches, top=18):
    clocks = Clocks()
    dec = model.decoder
    clocks.wrap(model, "encode", "encoder")
    clocks.wrap(dec, "features", "decoder layers")
    clocks.wrap(dec, "output_layer", "vocabulary projection")
    if hasattr(model, "links"):
        clocks.wrap(model.links, "forward", "links")
        for fn in ("target_match", "glancing_scores", "force_glanced", "mean_finite_nll", "dag_best_alignment"):
            clocks.wrap(dag_loss_mod, fn, fn)
        clocks.wrap(crit.sampler, "select", "glancing select")
    fwd = bwd = step = 0.0
    activities = [torch.profiler.ProfilerActivity.CPU]
    try:
        with torch.profiler.profile(activities=activities) as prof:
            for batch in batches:
                opt.zero_grad(set_to_none=True)
                t0 = time.process_time()
                loss, _, _ = crit(model, batch)
                t1 = time.process_time()
                loss.backward()
                t2 = time.process_time()
                opt.step()
                t3 = time.process_time()
                fwd, bwd, step = fwd + t1 - t0, bwd + t2 - t1, step + t3 - t2
    finally:
        clocks.restore()
    n = len(batches)
    # The output projection is the only bias-free Linear: its backward is the MmBackward0 nodes.
    mm_back = sum(e.cpu_time_total for e in prof.key_averages()
                  if e.key == "autograd::engine::evaluate_function: MmBackward0") / 1e6 / n
    print(f"\n{name} update breakdown, CPU seconds per update (mean of {n} batches, profiler on):")
    print(f"  forward {fwd / n:.3f}  backward {bwd / n:.3f}  optimizer {step / n:.3f}  total {(fwd + bwd + step) / n:.3f}")
    print("  | Part | no grad (glancing pass) | grad |\n  |---|---|---|")
    for label in dict.fromkeys(k[0] for k in clocks.total):
        ng, g = clocks.total.get((label, "no grad"), 0.0) / n, clocks.total.get((label, "grad"), 0.0) / n
        print(f"  | {label} | {ng:.3f} | {g:.3f} |")
    print(f"  | vocabulary projection, backward (MmBackward0) | | {mm_back:.3f} |")
    if top:
        print(f"\nTop operators of the {name} update by self CPU time (profiler):")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # --batches: batches per timed repetition; --min-len/--max-len: source lengths of the batches
    for option, default in (("vocab", 8000), ("max-tokens", 4096), ("min-len", 8), ("max-len", 24),
                            ("batches", 4), ("reps", 3), ("seed", 1)):
        p.add_argument(f"--{option}", type=int, default=default)
    p.add_argument("--no-breakdown", action="store_true")
    a = p.parse_args(argv)
    d, systems = build(a.vocab, a.seed)
    batches = make_batches(d, a.batches, a.max_tokens, a.min_len, a.max_len, a.seed)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, vocab {len(d)}, "
          f"batches: " + ", ".join(f"{b['target'].size(0)}x{b['net_input']['src_tokens'].size(1)}" for b in batches))
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-4) for k, (m, _) in systems.items()}
    opts["dat_before"] = opts["dat"]
    for k, (m, c) in systems.items():  # warm-up: allocator, lazy init
        m.train()
        update(m, c, opts[k], batches[0])
    # Per batch, the systems back to back (order alternating), so that a change of machine load
    # hits the three alike; CPU time of this process (1 thread) besides wall time, because on a
    # shared machine the wall clock also counts the time other processes hold the core.
    cpu = {k: [] for k in systems}
    kernel = {k: [] for k in systems}
    wall = {k: [] for k in systems}
    for rep in range(a.reps):
        for i, b in enumerate(batches):
            order = list(systems) if (rep + i) % 2 == 0 else list(systems)[::-1]
            for k in order:
                m, c = systems[k]
                t0, w0 = os.times(), time.perf_counter()
                update(m, c, opts[k], b)
                t1 = os.times()
                wall[k].append(time.perf_counter() - w0)
                cpu[k].append(t1.user + t1.system - t0.user - t0.system)
                kernel[k].append(t1.system - t0.system)
    # Kernel (system) time is mostly page faults on freshly mapped [B, P, V] tensors.
    print("| System | CPU s per update (median) | of which kernel | wall s per update (median) "
          "| CPU time / CMLM's (median of per-batch ratios) |")
    print("|---|---|---|---|---|")
    for k in systems:
        ratio = statistics.median(t / t_cmlm for t, t_cmlm in zip(cpu[k], cpu["cmlm"]))
        print(f"| {k} | {statistics.median(cpu[k]):.3f} | {statistics.median(kernel[k]):.3f} "
              f"| {statistics.median(wall[k]):.3f} | {ratio:.2f} |")
    for k in ("dat", "dat_before"):
        print(f"{k}/cmlm CPU-time ratio per batch: "
              + " ".join(f"{t / t_cmlm:.2f}" for t, t_cmlm in zip(cpu[k], cpu["cmlm"])))
    systems.pop("dat_before")
    if not a.no_breakdown:
        for k, (m, c) in systems.items():
            breakdown(k.upper(), m, c, opts[k], batches, top=18 if k == "dat" else 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
