"""Decoding DA-Transformer's DAG (Huang et al., ICML 2022, §2.4; Shao et al. 2022).

Each strategy picks one path ``a`` (``a_1 = 0 < ... < a_m = P_b - 1``) through the
graph; the output is the most probable token of every vertex on the path, with
consecutive repeats merged (§2.4).  All are one decoder pass
(``num_steps() == 0``), batched over sentences, and run on CPU and GPU.

================== ============================================================
``dag_greedy``      next vertex ``argmax_j links(i, j)``
``dag_lookahead``   next vertex ``argmax_j links(i, j) + beta * max_y log P(y | v_j)``
                    (``--decode-beta``; the ``auto`` default of ``dat`` models)
``dag_joint_viterbi`` maximise ``(sum links + sum max_y log P) / (|a| - 1)^beta`` over
                    all paths (Shao et al. 2022; ``--decode-viterbi-beta``),
                    via :func:`nat_plugins.ops.dag_viterbi`
``dag_sample``      next vertex sampled from ``softmax(links(i, .) / temperature)``
                    restricted to its top-p nucleus (``--decode-temperature``,
                    ``--decode-top-p``, ``--decode-seed``)
``dag_sample_lennorm`` ``--decode-samples`` paths sampled as ``dag_sample``; the
                    one with the best ``(sum links + sum max_y log P) / |a|^beta``
                    (``--decode-viterbi-beta``) is kept
================== ============================================================

Hypothesis scores (what ``fairseq-generate`` prints and what ranks several
candidates of one source): the mean token log-probability of the output for
``dag_greedy``, ``dag_lookahead`` and ``dag_sample``; the length-normalised
path objective for ``dag_joint_viterbi`` and ``dag_sample_lennorm``.

``<pad>``, ``<s>`` and ``</s>`` are never emitted (their probabilities are
ignored when reading tokens out); ``<unk>`` may be, as targets contain it.
"""
import torch

from ..modules.dag_links import valid_link_mask
from ..ops import dag_viterbi
from .dag_constraints import constrained_decode_graph, continuation_mask
from .strategy import CanvasState, DecodingStrategy, register_strategy

__all__ = [
    "DAGStrategy", "DAGGreedy", "DAGLookahead", "DAGJointViterbi", "DAGSample", "DAGSampleLenNorm",
    "merge_repeats", "path_link_scores",
]

# Lower than any finite log-probability, higher than -inf: keeps argmax and
# softmax inside the valid successors even if all their links are -inf.
_VERY_NEG = -1e30


def merge_repeats(tokens, scores, lengths, pad):
    """Merge consecutive repeated tokens (keeping the first of each run's score).

    Args:
        tokens: ``[N, L]``; scores: ``[N, L]``; lengths: ``[N]`` valid prefix lengths.
    Returns:
        ``(tokens [N, max(1, L')], scores, lengths [N])``, ``pad``/0 beyond the lengths.
    """
    L = tokens.size(1)
    valid = torch.arange(L, device=tokens.device)[None, :] < lengths[:, None]
    keep = valid.clone()
    keep[:, 1:] &= tokens[:, 1:].ne(tokens[:, :-1])
    return keep_positions(tokens, scores, keep, pad)


def keep_positions(tokens, scores, keep, pad):
    """Move the ``keep`` [N, L] positions of ``tokens``/``scores`` [N, L] to the front, in order.

    Returns ``(tokens [N, max(1, L')], scores, lengths [N])``, ``pad``/0 beyond the lengths.
    """
    N = tokens.size(0)
    new_len = keep.sum(1)
    width = max(int(new_len.max()) if N else 0, 1)
    slot = torch.where(keep, keep.long().cumsum(1) - 1, torch.full_like(tokens, width))
    out_tok = tokens.new_full((N, width + 1), pad).scatter(1, slot, tokens)
    out_sc = scores.new_zeros((N, width + 1)).scatter(1, slot, scores)
    return out_tok[:, :width], out_sc[:, :width], new_len


def path_link_scores(links, vertices):
    """Sum of ``links`` along each path: ``vertices [N, L]`` (``-1`` padded) -> ``[N]``."""
    if vertices.size(1) < 2:
        return links.new_zeros(vertices.size(0))
    src, dst = vertices[:, :-1], vertices[:, 1:]
    step = dst.ge(0)
    rows = torch.arange(vertices.size(0), device=vertices.device)[:, None]
    vals = links[rows, src.clamp(min=0), dst.clamp(min=0)]
    return torch.where(step, vals, torch.zeros_like(vals)).sum(1)


def _successor_scores(scores, lengths):
    """``scores [N, P, P]`` with -inf outside ``i < j < P_b`` and -inf inside clamped to ``_VERY_NEG``."""
    valid = valid_link_mask(lengths, scores.size(-1))
    return scores.clamp(min=_VERY_NEG).masked_fill(~valid, float("-inf"))


def _follow(choose, lengths):
    """Walk from vertex 0 until ``P_b - 1``; ``choose(cur [N]) -> next [N]``.

    Returns ``vertices [N, L]`` (``-1`` padded).
    """
    cur = torch.zeros_like(lengths)
    done = lengths.le(1)
    path = [cur]
    for _ in range(int(lengths.max()) - 1 if lengths.numel() else 0):
        if bool(done.all()):
            break
        nxt = choose(cur)
        cur = torch.where(done, cur, nxt)
        path.append(torch.where(done, torch.full_like(cur, -1), cur))
        done = done | cur.ge(lengths - 1)
    return torch.stack(path, 1)


def frame_logprobs(token_logprobs, lengths, bos, eos):
    """``[N, 2]``: log P(<s>) at vertex 0 and log P(</s>) at vertex ``P_b - 1`` of ``[N, P, V]`` log-probs."""
    rows = torch.arange(lengths.numel(), device=token_logprobs.device)
    last = (lengths.to(token_logprobs.device).long() - 1).clamp(min=0)
    return torch.stack([token_logprobs[:, 0, bos], token_logprobs[rows, last, eos]], 1).float()


class DAGStrategy(DecodingStrategy):
    """Shared part: one decoder pass, path search (:meth:`search`), token read-out."""

    families = ("dat",)
    default = False
    #: score ranks candidates by the length-normalised path objective instead of mean token log-prob
    joint_score = False

    def num_steps(self):
        return 0

    def _extra(self, name, default):
        value = self.options.extra.get(name)
        return default if value is None else value

    def viterbi_beta(self):
        return float(self._extra("decode_viterbi_beta", 1.0))

    def initialize(self, model, encoder_out, lengths, generator=None, constraints=None):
        n = max(1, self.options.samples)
        if n > 1 and lengths.numel() % n == 0:
            # Rows b*n .. b*n+n-1 are copies of one source (generator layout, k = 1):
            # run the decoder once per source and share its graph.
            first = torch.arange(0, lengths.numel(), n, device=lengths.device)
            token_lp, links = model.dag_graph(model.encoder.reorder_encoder_out(encoder_out, first), lengths[first])
            token_lp, links = token_lp.repeat_interleave(n, 0), links.repeat_interleave(n, 0)
        else:
            token_lp, links = model.dag_graph(encoder_out, lengths)
        framed = getattr(model, "frame_target", False)
        frame_lp = frame_logprobs(token_lp, lengths, model.bos, model.eos) if framed else None
        banned = sorted({model.pad, model.bos, model.eos})
        token_lp[..., banned] = float("-inf")
        if constraints is not None:  # --constraints (ours): see decoding/dag_constraints.py
            if not hasattr(model, "_nat_continuation_mask"):  # computed once per model
                model._nat_continuation_mask = continuation_mask(model.decoder.dictionary)
            tokens, scores, out_len, score, failed = constrained_decode_graph(
                self, links, token_lp, lengths, model.pad, framed, constraints, self.viterbi_beta(),
                continuation=model._nat_continuation_mask)
            return CanvasState(tokens, scores, out_len, extra={"score": score, "constraints_failed": failed})
        tokens, scores, out_len, score = self.decode_graph(links, token_lp, lengths, model.pad, generator,
                                                           framed=framed, frame_lp=frame_lp)
        return CanvasState(tokens, scores, out_len, extra={"score": score})

    def finalize(self, model, encoder_out, state):
        return state.tokens, state.scores, state.lengths, state.extra["score"]

    def decode_graph(self, links, token_logprobs, lengths, pad, generator=None, framed=False, frame_lp=None):
        """Decode a batch of DAGs (no model needed; the unit of the tests).

        Args:
            links: ``[N, P, P]`` link log-probs (read for ``i < j < P_b``).
            token_logprobs: ``[N, P, V]`` per-vertex token log-probs.
            lengths: ``[N]`` long ``P_b``.
            pad: padding id for the output.
            framed: the model was trained on ``<s> y </s>`` (``--dag-frame-target``): vertex 0
                and vertex ``P_b - 1``, which every path visits, emit the frame.  They are left
                out of the output.  Their token scores in the search are ``frame_lp``.
            frame_lp: ``[N, 2]`` log P(<s> | v_0) and log P(</s> | v_{P_b-1}) (what
                :meth:`initialize` passes), or None for ``log 1`` (hand-made DAGs).  The model's
                own frame scores matter to lookahead: with ``log 1`` the end vertex beats every
                content vertex, whose best token has log-prob < 0, and a barely trained model
                jumps from ``<s>`` straight to ``</s>`` (empty outputs).  DA-Transformer's
                lookahead also scores every vertex by its best token, ``</s>`` included.
        Returns:
            ``(tokens [N, L], token_scores [N, L], lengths [N], score [N])`` after merging repeats.
        """
        best_lp, best_tok = token_logprobs.float().max(-1)  # [N, P]
        links = links.float()
        lengths = lengths.to(links.device).long()
        if framed:
            ends = torch.arange(best_lp.size(1), device=best_lp.device)[None, :]
            first, last = ends.eq(0), ends.eq(lengths[:, None] - 1)
            if frame_lp is None:
                best_lp = best_lp.masked_fill(first | last, 0.0)
            else:
                frame_lp = frame_lp.to(best_lp)
                best_lp = torch.where(first, frame_lp[:, :1], torch.where(last, frame_lp[:, 1:], best_lp))
        vertices, path_score = self.search(links, best_lp, lengths, generator)
        if framed:
            # Paths start at vertex 0 and end at P_b - 1 (strictly increasing): drop both.
            vertices = vertices[:, 1:] if vertices.size(1) > 1 else vertices.new_full(vertices.shape, -1)
            vertices = vertices.masked_fill(vertices.eq(lengths[:, None] - 1), -1)
        on_path = vertices.ge(0)
        v = vertices.clamp(min=0)
        tokens = best_tok.gather(1, v).masked_fill(~on_path, pad)
        tok_lp = best_lp.gather(1, v).masked_fill(~on_path, 0.0)
        tokens, tok_lp, out_len = merge_repeats(tokens, tok_lp, on_path.sum(1), pad)
        if self.joint_score:
            score = path_score
        else:
            score = tok_lp.sum(1) / out_len.clamp(min=1).to(tok_lp)
        return tokens, tok_lp, out_len, score

    def search(self, links, best_lp, lengths, generator=None):
        """Choose paths: ``(vertices [N, L] -1 padded, path_score [N] or None)``."""
        raise NotImplementedError


@register_strategy
class DAGLookahead(DAGStrategy):
    """``next = argmax_j links(i, j) + beta * max_y log P(y | v_j)`` (Huang et al. 2022, §2.4)."""

    name = "dag_lookahead"
    default = True

    def beta(self):
        return float(self._extra("decode_beta", 1.0))

    def search(self, links, best_lp, lengths, generator=None):
        scores = _successor_scores(links + self.beta() * best_lp[:, None, :], lengths)
        table = scores.argmax(-1)  # [N, P] next vertex of each vertex
        return _follow(lambda cur: table.gather(1, cur[:, None]).squeeze(1), lengths), None


@register_strategy
class DAGGreedy(DAGLookahead):
    """``next = argmax_j links(i, j)``: lookahead with ``beta = 0`` (Huang et al. 2022, §2.4)."""

    name = "dag_greedy"
    default = False

    def beta(self):
        return 0.0


@register_strategy
class DAGJointViterbi(DAGStrategy):
    """Joint-Viterbi (Shao et al. 2022): best ``(sum links + sum max_y log P) / (|a| - 1)^beta`` over all paths.

    The divisor counts transitions, as the DA-Transformer reference implementation does
    (REFERENCE.md §9); ``nat_plugins.ops.dag_viterbi(length_norm="vertices")`` is the earlier |a|.
    """

    name = "dag_joint_viterbi"
    joint_score = True
    #: accepts fairseq's ``--constraints`` (ordered phrases), via decoding/dag_constraints.py
    accepts_constraints = True

    def search(self, links, best_lp, lengths, generator=None):
        beta = float(self._extra("decode_viterbi_beta", 1.0))
        vertices, _, score = dag_viterbi(links, best_lp, lengths, beta=beta, length_norm="transitions")
        return vertices, score.float()


@register_strategy
class DAGSample(DAGStrategy):
    """Sample each transition from ``softmax(links(i, .) / temperature)`` within its top-p nucleus."""

    name = "dag_sample"
    stochastic = True

    def search(self, links, best_lp, lengths, generator=None):
        temperature = float(self.options.temperature)
        top_p = float(self._extra("decode_top_p", 1.0))
        if temperature <= 0 or not 0 < top_p <= 1:
            from ..errors import NATUserError

            raise NATUserError("--decode-temperature must be > 0 and --decode-top-p in (0, 1]")
        scores = _successor_scores(links, lengths)
        rows = torch.arange(links.size(0), device=links.device)

        def choose(cur):
            logits = scores[rows, cur] / temperature  # [N, P]
            dead = torch.isinf(logits).all(1)  # finished rows: no successor
            logits = logits.masked_fill(dead[:, None], 0.0)
            probs = torch.softmax(logits, -1)
            if top_p < 1:
                sorted_p, order = probs.sort(-1, descending=True)
                before = sorted_p.cumsum(-1) - sorted_p  # mass of strictly more probable vertices
                sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)
                probs = torch.zeros_like(probs).scatter(1, order, sorted_p)
            return torch.multinomial(probs, 1, generator=generator).squeeze(1)

        vertices = _follow(choose, lengths)
        return vertices, self._joint(links, best_lp, vertices)

    def _joint(self, links, best_lp, vertices):
        beta = float(self._extra("decode_viterbi_beta", 1.0))
        on = vertices.ge(0)
        token_sum = best_lp.gather(1, vertices.clamp(min=0)).masked_fill(~on, 0.0).sum(1)
        total = path_link_scores(links, vertices) + token_sum
        return total / on.sum(1).clamp(min=1).to(total).pow(beta)


@register_strategy
class DAGSampleLenNorm(DAGSample):
    """``--decode-samples`` sampled paths; keep the best ``(sum links + sum max_y log P) / |a|^beta``."""

    name = "dag_sample_lennorm"
    joint_score = True
