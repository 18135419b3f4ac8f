"""Rescoring NAT candidates with an autoregressive model.

Mask-Predict §3.3 and fairseq's ``--iter-decode-with-external-reranker``
choose among length candidates with an AR teacher.  fairseq's version reads
``encoder_out.encoder_out`` and breaks with today's dict encoder outputs
(REFERENCE §2); this one uses the dict API.
"""
import torch

__all__ = ["ar_candidate_scores"]


@torch.no_grad()
def ar_candidate_scores(ar_model, src_tokens, src_lengths, hyp_tokens, hyp_lengths, pad, eos):
    """Mean log-probability of each candidate under an AR model.

    Args:
        ar_model: a fairseq encoder-decoder with teacher-forced ``forward``.
        src_tokens: [N, S] source for each candidate (already repeated).
        src_lengths: [N].
        hyp_tokens: [N, L] candidates, ``pad`` beyond ``hyp_lengths``.
        hyp_lengths: [N].
    Returns:
        [N] mean log-probability of ``tokens + <eos>``.
    """
    n, length = hyp_tokens.shape
    positions = torch.arange(length + 1, device=hyp_tokens.device)[None, :]
    target = torch.cat([hyp_tokens, hyp_tokens.new_full((n, 1), pad)], 1)
    target = target.masked_fill(positions == hyp_lengths[:, None], eos)
    prev = torch.cat([hyp_tokens.new_full((n, 1), eos), target[:, :-1]], 1)
    prev = prev.masked_fill(positions > hyp_lengths[:, None], pad)
    valid = positions <= hyp_lengths[:, None]
    net_out = ar_model(src_tokens, src_lengths, prev)
    lprobs = ar_model.get_normalized_probs(net_out, log_probs=True).float()
    tok = lprobs.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (tok * valid).sum(1) / valid.sum(1)
