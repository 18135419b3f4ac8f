"""Lexically constrained decoding of a DA-Transformer graph (ours; not in Huang et al. 2022).

fairseq's ``--constraints`` (``fairseq-interactive``: the source line, then one
tab-separated target phrase per constraint) reaches the NAT generator as one
list of token phrases per sentence.  :func:`constrained_decode_graph` decodes
the graph with :func:`nat_plugins.ops.dag_constrained_torch.dag_constrained_viterbi`:
the joint-Viterbi objective (Shao et al. 2022) over paths that emit every phrase,
in the given order and each on consecutive vertices; the other vertices emit
their most probable token as in unconstrained joint-Viterbi.  Only the
``ordered`` mode exists: the unordered problem is a DP over subsets of phrases.
Only joint-Viterbi takes constraints: greedy and lookahead decoding optimise
nothing over whole paths, so they have no exact constrained form (a greedy walk
can reach the last vertex with phrases still unplaced).

Read-out differences from :meth:`DAGStrategy.decode_graph` (our choices):

* repeats are merged as DA-Transformer does, except that a constraint token is
  never merged away: a run of equal tokens that holds a constraint token keeps
  exactly its constraint tokens, so a phrase like "very very" survives;
* with ``--dag-frame-target``, the frame vertices (first and last) may not emit
  constraint tokens, since their tokens are dropped from the output;
* with subword-nmt units (a dictionary holding ``@@``-final continuation pieces), the
  free vertex right before a phrase emits its best piece that ends a word, so that
  removing the BPE (``--remove-bpe``) cannot join the phrase to the word before it
  (on the quickstart test split 42 of 1200 sentences lost a phrase that way, e.g.
  ``ab@@`` + ``stürzen`` read as "abstürzen");
* a sentence whose phrases cannot be placed (more constraint tokens than usable
  vertices, or no finite path) gets the unconstrained joint-Viterbi output and
  is flagged in ``failed``; the generator logs one line for it.
"""
from typing import List, Sequence

import torch

from ..ops.dag_constrained_torch import dag_constrained_viterbi

__all__ = ["phrase_tensors", "merge_repeats_keeping", "continuation_mask", "constrained_decode_graph"]


def phrase_tensors(constraints: Sequence[Sequence[Sequence[int]]], device):
    """Concatenate each sentence's phrases: ``(tokens [N, C] long, phrase_end [N, C] bool, C_len [N])``."""
    N = len(constraints)
    C = max([sum(len(p) for p in ph) for ph in constraints] + [1])
    tokens = torch.zeros((N, C), dtype=torch.long)
    phrase_end = torch.zeros((N, C), dtype=torch.bool)
    C_len = torch.zeros(N, dtype=torch.long)
    for n, phrases in enumerate(constraints):
        k = 0
        for phrase in phrases:
            if len(phrase) == 0:
                continue
            tokens[n, k:k + len(phrase)] = torch.as_tensor(list(phrase), dtype=torch.long)
            k += len(phrase)
            phrase_end[n, k - 1] = True
        C_len[n] = k
    return tokens.to(device), phrase_end.to(device), C_len.to(device)


def merge_repeats_keeping(tokens, scores, lengths, pad, keep_mask):
    """Merge runs of equal tokens, but keep every position of ``keep_mask`` (constraint tokens).

    A run without kept positions shrinks to its first token (DA-Transformer's merge);
    a run with kept positions shrinks to exactly those.

    Args:
        tokens, scores: ``[N, L]``; lengths: ``[N]``; keep_mask: ``[N, L]`` bool.
    Returns:
        ``(tokens [N, L'], scores [N, L'], lengths [N])``, ``pad``/0 past the lengths.
    """
    N, L = tokens.shape
    valid = torch.arange(L, device=tokens.device)[None, :] < lengths[:, None]
    starts = valid.clone()
    starts[:, 1:] &= tokens[:, 1:].ne(tokens[:, :-1])
    run = starts.long().cumsum(1)  # run id (1-based) of every position
    protected = keep_mask & valid
    run_has_kept = torch.zeros((N, L + 1), dtype=torch.long, device=tokens.device)
    run_has_kept.scatter_add_(1, run.clamp(max=L), protected.long())
    keep = protected | (starts & run_has_kept.gather(1, run.clamp(max=L)).eq(0))
    from .dag_decoding import keep_positions  # dag_decoding imports this module

    return keep_positions(tokens, scores, keep, pad)


def _pad_to(x, width, value):
    if x.size(1) >= width:
        return x
    return torch.cat([x, x.new_full((x.size(0), width - x.size(1)), value)], 1)


def continuation_mask(dictionary):
    """``[V]`` bool: the symbols that continue a word (subword-nmt's ``ab@@``); None when there are none."""
    symbols = getattr(dictionary, "symbols", None) or []
    mask = torch.tensor([str(w).endswith("@@") for w in symbols], dtype=torch.bool)
    return mask if bool(mask.any()) else None


def constrained_decode_graph(strategy, links, token_logprobs, lengths, pad, framed, constraints: List, beta,
                             continuation=None):
    """Constrained joint-Viterbi read-out; the counterpart of :meth:`DAGStrategy.decode_graph`.

    Args:
        strategy: the calling :class:`~nat_plugins.decoding.dag_decoding.DAGStrategy` (for the fallback).
        links: ``[N, P, P]``; token_logprobs: ``[N, P, V]``; lengths: ``[N]`` ``P_b``.
        constraints: ``N`` lists of phrases (lists of target token ids).
        beta: joint-Viterbi length exponent.
        continuation: ``[V]`` bool (:func:`continuation_mask`) or None: tokens that may not stand right
            before a phrase.
    Returns:
        ``(tokens [N, L], token_scores [N, L], lengths [N], score [N], failed [N] bool)``.
    """
    links = links.float()
    lengths = lengths.to(links.device).long()
    lp = token_logprobs.float()
    best_lp, best_tok = lp.max(-1)  # [N, P]
    con_tok, phrase_end, C_len = phrase_tensors(constraints, links.device)
    final_lp = final_tok = None
    if continuation is not None:
        # per progress k, the vertex before the phrase opening at c_k emits its best word-final token other
        # than c_k itself (the repeat merge would swallow a copy of c_k and glue the word before it)
        top_lp, top_tok = lp.masked_fill(continuation.to(lp.device), float("-inf")).topk(2, dim=-1)  # [N, P, 2]
        opening = torch.cat([con_tok, con_tok.new_full((con_tok.size(0), 1), -1)], 1)  # [N, C + 1]
        same = top_tok[:, None, :, 0].eq(opening[:, :, None])  # [N, C + 1, P]
        final_lp = torch.where(same, top_lp[:, None, :, 1], top_lp[:, None, :, 0])
        final_tok = torch.where(same, top_tok[:, None, :, 1], top_tok[:, None, :, 0])
    con_lp = lp.gather(2, con_tok[:, None, :].expand(-1, lp.size(1), -1)).transpose(1, 2)  # [N, C, P]
    if framed:
        verts = torch.arange(best_lp.size(1), device=best_lp.device)[None, :]
        frame = verts.eq(0) | verts.eq(lengths[:, None] - 1)
        best_lp = best_lp.masked_fill(frame, 0.0)
        if final_lp is not None:
            final_lp = final_lp.masked_fill(frame[:, None, :], 0.0)
        con_lp = con_lp.masked_fill(frame[:, None, :], float("-inf"))
    vertices, emits, _, score = dag_constrained_viterbi(
        links, best_lp, con_lp, phrase_end, C_len, lengths, beta=beta, length_norm="transitions",
        word_final_logprobs=final_lp)
    if framed:
        vertices, emits = vertices[:, 1:], emits[:, 1:]
        last = vertices.eq(lengths[:, None] - 1)
        vertices, emits = vertices.masked_fill(last, -1), emits.masked_fill(last, -1)
    on_path = vertices.ge(0)
    v = vertices.clamp(min=0)
    forced = emits.ge(0)
    k = emits.clamp(min=0)
    rows = torch.arange(v.size(0), device=v.device)[:, None]
    free_tok, free_lp = best_tok.gather(1, v), best_lp.gather(1, v)
    if final_lp is not None:
        word_final = emits.eq(-2)
        progress = forced.long().cumsum(1) - forced.long()  # constraint tokens before each path position
        free_tok = torch.where(word_final, final_tok[rows, progress, v], free_tok)
        free_lp = torch.where(word_final, final_lp[rows, progress, v], free_lp)
    tokens = torch.where(forced, con_tok.gather(1, k), free_tok).masked_fill(~on_path, pad)
    tok_lp = torch.where(forced, con_lp[rows, k, v], free_lp).masked_fill(~on_path, 0.0)
    tokens, tok_lp, out_len = merge_repeats_keeping(tokens, tok_lp, on_path.sum(1), pad, forced)
    score = score.float()

    failed = ~torch.isfinite(score)
    if bool(failed.any()):
        idx = failed.nonzero().squeeze(1)
        f_tok, f_lp, f_len, f_score = strategy.decode_graph(links[idx], token_logprobs[idx], lengths[idx], pad,
                                                            framed=framed)
        width = max(tokens.size(1), f_tok.size(1))
        tokens, tok_lp = _pad_to(tokens, width, pad), _pad_to(tok_lp, width, 0.0)
        tokens[idx], tok_lp[idx] = _pad_to(f_tok, width, pad), _pad_to(f_lp, width, 0.0)
        out_len[idx], score[idx] = f_len, f_score.float()
    return tokens, tok_lp, out_len, score, failed
