"""The fairseq-facing generator shared by every NAT model of the plugin.

Per batch it: encodes; proposes ``length_beam`` target lengths per source
(the top-k of the length predictor, Mask-Predict §3.3); repeats each
candidate ``samples`` times (SUNDAE §3.1's n samples); runs the strategy's
steps with optional early stop and step history; reads out; and ranks the
candidates of each source by the strategy's score or by an AR reranker.

Fixes over fairseq's ``IterativeRefinementGenerator`` (REFERENCE §2):
length candidates are the top-k predicted lengths, not ``argmax ± k/2``;
candidate selection stays on the tensors' device (no ``np.argmax`` on CUDA);
AR reranking uses dict encoder outputs; empty sources give empty output.
"""
import logging

import torch

from ..errors import NATUserError
from .reranking import ar_candidate_scores
from .templates import TemplateBatch, check_width

logger = logging.getLogger(__name__)

__all__ = ["NATGenerator"]


class NATGenerator:
    """Decode with one NAT model (plus an optional AR reranker).

    Args:
        tgt_dict: target dictionary.
        strategy: a :class:`~nat_plugins.decoding.strategy.DecodingStrategy`.
        retain_history: keep each step's canvas (``fairseq-generate
            --retain-iter-history`` prints them as ``E-`` lines).
        ar_rerank: rescore candidates with ``models[1]``.
    """

    def __init__(self, tgt_dict, strategy, retain_history=False, ar_rerank=False):
        self.tgt_dict = tgt_dict
        self.strategy = strategy
        self.options = strategy.options
        self.retain_history = retain_history
        self.ar_rerank = ar_rerank
        self.pad, self.eos, self.bos = tgt_dict.pad(), tgt_dict.eos(), tgt_dict.bos()
        self.symbols_to_strip_from_output = {self.bos, self.eos}

    # fairseq's SequenceGenerator API ------------------------------------
    def cuda(self):
        return self

    @torch.no_grad()
    def generate(self, models, sample, prefix_tokens=None, constraints=None, **unused):
        """Translate ``sample["net_input"]``; returns, per sentence, a list of
        hypothesis dicts (best first) with ``tokens`` (ending in ``<eos>``),
        ``positional_scores``, ``score``, ``steps`` and ``history``."""
        if prefix_tokens is not None:
            raise NATUserError("NAT decoding does not support --prefix-size")
        phrases = self._constraint_phrases(constraints)
        model = models[0]
        reranker = None
        if self.ar_rerank:
            if len(models) != 2:
                raise NATUserError("--decode-ar-rerank needs --path NAT.pt:AR.pt (exactly two checkpoints)")
            reranker = models[1].eval()
        elif len(models) > 1:
            raise NATUserError("NAT models cannot be ensembled; pass one --path (or use --decode-ar-rerank)")
        model.eval()

        src_tokens = sample["net_input"]["src_tokens"]
        src_lengths = sample["net_input"]["src_lengths"]
        bsz = src_tokens.size(0)
        rng = None
        if self.options.seed is not None:
            rng = torch.Generator(device=src_tokens.device)
            rng.manual_seed(self.options.seed)

        results = [[self._empty_hypo(src_tokens)] for _ in range(bsz)]
        real = model.source_lengths(src_tokens).gt(0)
        rows = real.nonzero().squeeze(1)
        if rows.numel() == 0:
            return results
        sub_src, sub_len = src_tokens[rows], src_lengths[rows]

        encoder_out = model.encode(sub_src, sub_len)
        lengths, _ = model.predict_lengths(encoder_out, sub_src, k=self.options.length_beam)
        k, n = lengths.size(1), max(1, self.options.samples)
        # Candidate c of source b sits at row b * k * n + c.
        expand = torch.arange(rows.numel(), device=src_tokens.device).repeat_interleave(k * n)
        encoder_out = model.encoder.reorder_encoder_out(encoder_out, expand)
        cand_lengths = lengths.repeat_interleave(n, dim=1).reshape(-1)

        controls = {}
        if phrases is not None:  # one copy of the source's phrases per candidate row
            controls["constraints"] = [phrases[r] for r in rows.tolist() for _ in range(k * n)]
        if sample.get("templates") is not None:  # --decode-templates (decoding/templates.py)
            controls["template"], cand_lengths = self._templates(model, sample["templates"], rows, k * n, cand_lengths)
        tokens, scores, out_lengths, score, steps, history, failed = self._run(
            model, encoder_out, cand_lengths, rng, controls)

        if reranker is not None:
            score = ar_candidate_scores(
                reranker, sub_src[expand], sub_len[expand], tokens, out_lengths, self.pad, self.eos
            )
        score = score.view(-1, k * n)
        order = score.argsort(dim=1, descending=True)
        if failed is not None:
            # Candidates that could not place the constraints rank after those that could.
            failed = failed.view(-1, k * n)
            order = order.gather(1, failed.gather(1, order).long().argsort(dim=1, stable=True))
            self._warn_unplaced(model, sample, rows, phrases, failed)
        for i, row in enumerate(rows.tolist()):
            hypos = []
            for c in order[i].tolist():
                j = i * k * n + c
                hypos.append(self._hypo(tokens[j], scores[j], out_lengths[j], score[i, c], steps[j],
                                        [(h[j], None if n is None else n[j]) for h, n in history]
                                        if history is not None else None))
            results[row] = hypos
        return results

    # internals ------------------------------------------------------------
    def _constraint_phrases(self, constraints):
        """fairseq's packed ``--constraints`` ``[B, *]`` -> per source a list of phrases (token id lists)."""
        if constraints is None:
            return None
        if not getattr(self.strategy, "accepts_constraints", False):
            raise NATUserError(f"--constraints needs a DA-Transformer or DiffGLAT model decoded with "
                               f"dag_joint_viterbi (the decoding strategy is {self.strategy.name})")
        from fairseq.token_generation_constraints import unpack_constraints

        return [[p.tolist() for p in unpack_constraints(row.cpu())] for row in constraints]

    def _templates(self, model, templates, rows, per_source, cand_lengths):
        """Resolve each source's template (None: free) for its candidate rows; returns the
        :class:`~nat_plugins.decoding.templates.TemplateBatch` and the candidates' new lengths."""
        if not getattr(self.strategy, "accepts_templates", False):
            raise NATUserError(f"--decode-templates: the decoding strategy {self.strategy.name} does not take "
                               "target templates (mask_predict, sundae_sample, sundae_argmax_unrolled and "
                               "sunmask_sample do)")
        per_row = [templates[r] for r in rows.tolist() for _ in range(per_source)]
        batch, cand_lengths = TemplateBatch.build(per_row, cand_lengths)
        check_width(batch, getattr(model, "max_canvas", None) or model.max_decoder_positions())
        return batch, cand_lengths

    def _warn_unplaced(self, model, sample, rows, phrases, failed):
        # fairseq-interactive's batches carry no sentence ids: name the source text too
        ids = sample.get("id")
        src_dict = model.encoder.dictionary
        for i, row in enumerate(rows.tolist()):
            if bool(failed[i].all()) and phrases[row]:
                src = sample["net_input"]["src_tokens"][row]
                text = src_dict.string(src[src.ne(src_dict.pad()) & src.ne(src_dict.eos())])
                name = f"sentence {int(ids[row])}" if ids is not None else "a sentence"
                shown = " | ".join(self.tgt_dict.string(torch.tensor(p)) for p in phrases[row])
                logger.warning(f"nat_plugins: {name}: the constraints ({shown}) do not fit its graph; giving the "
                               f"unconstrained translation; source: {text}")

    def _run(self, model, encoder_out, lengths, rng, controls=None):
        strategy = self.strategy
        state = strategy.initialize(model, encoder_out, lengths, generator=rng, **(controls or {}))
        history = [strategy.history_entry(model, state)] if self.retain_history else None
        num_steps = strategy.num_steps()
        steps = lengths.new_zeros(lengths.shape)
        active = torch.ones_like(lengths, dtype=torch.bool)
        early_stop = self.options.early_stop and not strategy.stochastic
        for t in range(num_steps):
            idx = active.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            sub_enc = encoder_out if idx.numel() == active.numel() else model.encoder.reorder_encoder_out(encoder_out, idx)
            new = strategy.step(model, sub_enc, state.select(idx), t, num_steps, generator=rng)
            state.assign(idx, new)
            steps[idx] += 1
            if early_stop and new.changed is not None:
                active[idx[~new.changed]] = False
            if history is not None:
                history.append(strategy.history_entry(model, state))
        tokens, scores, out_lengths, score = strategy.finalize(model, encoder_out, state)
        return tokens, scores, out_lengths, score, steps, history, state.extra.get("constraints_failed")

    def _empty_hypo(self, like):
        return {
            "tokens": like.new_tensor([self.eos]),
            "positional_scores": torch.zeros(1, device=like.device),
            "score": torch.tensor(0.0, device=like.device),
            "alignment": None,
            "attention": None,
            "steps": 0,
            "history": [],
        }

    def _hypo(self, tokens, scores, length, score, steps, history):
        length = int(length)
        toks = torch.cat([tokens[:length], tokens.new_tensor([self.eos])])
        pos = torch.cat([scores[:length].float(), scores.new_zeros(1).float()])
        hist = None
        if history is not None:
            hist = [{"tokens": torch.cat([h[:length if n is None else int(n)], h.new_tensor([self.eos])]),
                     "positional_scores": None, "score": None, "alignment": None} for h, n in history]
        return {
            "tokens": toks,
            "positional_scores": pos,
            "score": score,
            "alignment": None,
            "attention": None,
            "steps": int(steps),
            "history": hist,
        }
