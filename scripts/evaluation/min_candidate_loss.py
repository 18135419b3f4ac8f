#!/usr/bin/env python3
"""Validation loss against the closest of several candidate targets, per checkpoint.

For each source of a split, every candidate target (one line per source in a
``.candidates`` file, candidates separated by a tab; see
``scripts/data/synthetic_multimodality.py``) is scored with the model's own
training loss; the sentence's loss is the **minimum over its candidates**, so a
model that commits to one mode is not penalised for the others.  Reported:
the mean over sentences of that minimum, in bits per target token
(``valid_min_loss``), the mean loss against each candidate, and the share of
sentences whose minimum is each candidate.

The loss is each criterion's negative log-likelihood (its logged
``nll_loss``), read so that it is deterministic: no label smoothing, no
glancing, no random masking.  Per sentence: ``-log2 P(y | x)`` divided by the
tokens the criterion normalises by.  The reading per criterion:

* ``label_smoothed_cross_entropy`` / ``cross_entropy`` (AR): teacher-forced
  NLL of ``y`` and its ``</s>``, per token including ``</s>``;
* ``cmlm_loss``, ``pml_loss`` (CMLM, vanilla NAR, PML): one pass on the
  all-``<mask>`` canvas of the target's length, NLL of every target token
  (the criterion with every token masked; PML: the last layer, the model's
  output).  The length loss is left out: it is the same for every candidate
  of a source, which all have the source's length;
* ``dag_loss`` (DA-Transformer): ``-log P_DAG(y | x)`` on the position-only
  graph at the decoding scale, without glancing, per target token (framed
  targets count ``<s>`` and ``</s>``) -- the criterion's validation reading;
* ``diffglat_loss``: the same after the whole no-grad process of
  ``--diffusion-iterations`` passes (the criterion's validation reading:
  level 1, target ``y_0``, no glancing);
* ``sundae_loss``: ``L(1)`` on a fully corrupted canvas (every position a
  uniform noise symbol, the prior decoding starts from), per canvas position
  including the end padding, as the criterion normalises; the noise comes from
  a generator seeded per batch, identical for every candidate of a batch;
* ``sunmask_loss``: the same canvas with nothing trusted (mask all 0), every
  canvas position scored, per position (not the ``1 / (1 + K)`` curriculum
  weight, which is ``1 / (1 + width)`` here).

Sentences whose minimum is not finite (e.g. a graph too small for every
candidate) are left out of the mean and counted (``nonfinite``).

    python scripts/evaluation/min_candidate_loss.py data-bin/repro/easy \\
        --candidates data/repro/easy/raw/valid.candidates --path runs/repro/easy/dat/checkpoint_9_250.pt
"""
import argparse
import json
import math
import os
import sys

_SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [p for p in (os.path.join(_SCRIPTS, "data"),) if p not in sys.path]
if os.path.dirname(_SCRIPTS) not in sys.path:  # a checkout without the editable install
    sys.path.append(os.path.dirname(_SCRIPTS))

import text_files  # noqa: E402  (scripts/data/text_files.py)

#: seed of the noise canvas of SUNDAE/SUNMASK (per batch: SEED + batch number)
SEED = 1
AR_CRITERIA = ("label_smoothed_cross_entropy", "cross_entropy")


def _token_nll(logits, target, scored):
    """``([B] summed NLL in nats, [B] scored tokens)`` of ``target [B, W]`` at ``scored [B, W]``."""
    import torch

    lprobs = torch.log_softmax(logits.float(), dim=-1)
    nll = -lprobs.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (nll * scored).sum(1).double(), scored.sum(1)


def _ar_nll(model, sample):
    net_output = model(**sample["net_input"])
    logits = net_output[0]
    target = sample["target"]
    return _token_nll(logits, target, target.ne(model.decoder.dictionary.pad()))


def _masked_nll(model, sample):
    from nat_plugins.criterions.cmlm_loss import CMLMLoss

    target, real = CMLMLoss.real_target(model, sample)
    canvas = target.masked_fill(real, model.mask_idx)
    net = sample["net_input"]
    encoder_out = model.encode(net["src_tokens"], net["src_lengths"])
    return _token_nll(model.decoder.output_layer(model.decoder.features(canvas, encoder_out)), target, real)


def _dag_nll(model, sample, diffglat=False):
    import torch

    from nat_plugins.criterions.dag_loss import target_match
    from nat_plugins.ops import dag_log_likelihood

    net = sample["net_input"]
    target, tgt_len, _ = model.dag_target(sample["target"])
    encoder_out = model.encode(net["src_tokens"], net["src_lengths"])
    graph_len = model.graph_lengths(net["src_tokens"], model.upsample_scale())
    canvas = model.graph_canvas(graph_len)
    if diffglat:
        states, padding_mask = model.initial_states(canvas)
        states = model.run_transitions(states, encoder_out, padding_mask, 0, model.num_transitions())
        logits, links = model.transition_outputs(states, graph_len)
    else:
        logits, links = model.dag_forward(encoder_out, canvas)
    nll = torch.full((target.size(0),), math.inf, dtype=torch.double)
    rows = (tgt_len.ge(1) & tgt_len.le(graph_len)).nonzero().squeeze(1)
    if rows.numel():
        match = target_match(logits[rows], target[rows])
        impl = "auto" if match.is_cuda else "torch"  # "auto" on a CPU only warns that it falls back to torch
        nll[rows] = -dag_log_likelihood(match, links[rows], graph_len[rows], tgt_len[rows], impl=impl).double()
    return nll, tgt_len


def _noise_canvas_nll(model, sample, batch_number):
    import torch

    from nat_plugins.modules.noise import uniform_random_tokens

    clean, in_canvas, length_d = model.gold_canvas(sample["target"])
    net = sample["net_input"]
    encoder_out = model.encode(net["src_tokens"], net["src_lengths"])
    generator = torch.Generator().manual_seed(SEED + batch_number)
    noise = uniform_random_tokens(clean.shape, model.noise_symbols.cpu(), generator=generator).to(clean.device)
    canvas = noise.masked_fill(~in_canvas, model.pad)
    # SUNMASK's canvas_logits trusts nothing by default (mask all 0); SUNDAE has no mask
    return _token_nll(model.canvas_logits(canvas, encoder_out, length_d), clean, in_canvas)


def sentence_nll(model, criterion, sample, batch_number=0):
    """``([B] NLL in nats, [B] tokens it is normalised by)`` of ``sample``'s targets, rows in sample order."""
    if criterion in AR_CRITERIA:
        return _ar_nll(model, sample)
    if criterion in ("cmlm_loss", "pml_loss"):
        return _masked_nll(model, sample)
    if criterion in ("dag_loss", "diffglat_loss"):
        return _dag_nll(model, sample, diffglat=criterion == "diffglat_loss")
    if criterion in ("sundae_loss", "sunmask_loss"):
        return _noise_canvas_nll(model, sample, batch_number)
    raise ValueError(f"no deterministic loss reading for criterion {criterion!r}")


def min_over_candidates(losses):
    """``(per-sentence minimum [N], argmin [N])`` of ``losses [K][N]`` (bits per token); ties go to the first."""
    mins, picks = [], []
    for column in zip(*losses):
        column = [value if math.isfinite(value) else math.inf for value in column]  # NaN never wins
        best = min(range(len(column)), key=lambda k: (column[k], k))
        mins.append(column[best])
        picks.append(best)
    return mins, picks


def summarize(losses):
    """The JSON-ready result of ``losses [K][N]`` (bits per target token of candidate k, sentence n)."""
    mins, picks = min_over_candidates(losses)
    finite = [i for i, value in enumerate(mins) if math.isfinite(value)]
    n = len(mins)

    def mean(values):
        values = [v for v in values if math.isfinite(v)]
        return round(sum(values) / len(values), 4) if values else None

    return {
        "valid_min_loss": mean([mins[i] for i in finite]),
        "sentences": n,
        "nonfinite": n - len(finite),
        "per_candidate_loss": [mean(column) for column in losses],
        "argmin_share": [round(100.0 * sum(picks[i] == k for i in finite) / max(len(finite), 1), 2)
                         for k in range(len(losses))],
        "unit": "bits per target token",
    }


def load_checkpoint(path, data):
    """``(model in eval mode, criterion name, task)`` of a checkpoint, its task reading ``data``."""
    from fairseq import checkpoint_utils

    import nat_plugins  # noqa: F401  (registers the plugin's tasks, models and criterions)

    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides={"data": data})
    model = models[0].eval()
    return model, str(cfg.criterion._name), task


def candidate_losses(model, criterion, task, split, candidates, batch_size=100):
    """``[K][N]`` bits per token of each candidate target of each sentence of ``split`` (in line order).

    ``candidates``: per source line, its candidate target strings (all sources the same count K).  The
    split's own target must be one of them, else the file belongs to other data.
    """
    import torch

    task.load_dataset(split)
    dataset = task.dataset(split)
    if len(dataset) != len(candidates):
        raise ValueError(f"split {split!r} has {len(dataset)} sentences but the candidates file {len(candidates)}")
    counts = {len(c) for c in candidates}
    if len(counts) != 1:
        raise ValueError(f"every source needs the same number of candidates, found {sorted(counts)}")
    tgt_dict = task.target_dictionary
    encoded = [[tgt_dict.encode_line(c, add_if_not_exist=False, append_eos=True).long() for c in row]
               for row in candidates]
    K, N = counts.pop(), len(candidates)
    losses = [[math.nan] * N for _ in range(K)]
    with torch.no_grad():
        for batch_number, start in enumerate(range(0, N, batch_size)):
            items = [dataset[i] for i in range(start, min(start + batch_size, N))]
            for item in items:
                if not any(torch.equal(item["target"], c) for c in encoded[item["id"]]):
                    raise ValueError(f"the target of {split} sentence {item['id']} is none of its candidates: "
                                     "is the candidates file of this data?")
            order = None
            for k in range(K):
                sample = dataset.collater([dict(item, target=encoded[item["id"]][k]) for item in items])
                ids = sample["id"].tolist()
                if order is not None and ids != order:
                    raise RuntimeError("the collater ordered two candidates' batches differently")
                order = ids
                nll, tokens = sentence_nll(model, criterion, sample, batch_number)
                for row, index in enumerate(ids):
                    losses[k][index] = float(nll[row]) / max(int(tokens[row]), 1) / math.log(2)
    return losses


def evaluate_checkpoint(path, data, candidates, split="valid", batch_size=100):
    """The :func:`summarize` result of one checkpoint, with the criterion it was read with."""
    import torch

    torch.manual_seed(SEED)  # nothing below should draw from it; a stray draw is then at least repeatable
    model, criterion, task = load_checkpoint(path, data)
    result = summarize(candidate_losses(model, criterion, task, split, candidates, batch_size))
    result.update(criterion=criterion, split=split)
    return result


def read_candidates(path):
    """``[[candidate target string, ...] per source line]`` of a ``.candidates`` file."""
    return [line.split("\t") for line in text_files.read_lines(path)]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("data", help="fairseq-preprocess folder of the split")
    parser.add_argument("--candidates", required=True, help="one line per source, candidate targets tab-separated")
    parser.add_argument("--path", required=True, nargs="+", help="checkpoint(s)")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--json-out", metavar="FILE", help="also write {checkpoint: result} to FILE")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    candidates = read_candidates(args.candidates)
    results = {}
    for path in args.path:
        try:
            results[path] = evaluate_checkpoint(path, args.data, candidates, args.split, args.batch_size)
        except (OSError, ValueError) as error:
            print(f"min_candidate_loss.py: error: {path}: {error}", file=sys.stderr)
            return 2
        print(json.dumps({"path": path, **results[path]}), flush=True)
    if args.json_out:
        with open(args.json_out + ".part", "w", encoding="utf-8") as handle:
            json.dump(results, handle)
        os.replace(args.json_out + ".part", args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
