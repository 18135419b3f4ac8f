"""Token-level losses shared by the NAT criterions."""
import torch.nn.functional as F

__all__ = ["label_smoothed_nll"]


def label_smoothed_nll(logits, target, epsilon):
    """Label-smoothed negative log-likelihood per token.

    Uses the same smoothing as fairseq's ``nat_loss`` (so CMLM parity runs
    compare like with like): ``(1 - eps) * nll + eps * mean_v(-log p_v)``.

    Args:
        logits: [N, V] unnormalised scores (any float dtype; computed in fp32).
        target: [N] gold token ids.
        epsilon: smoothing mass in [0, 1).
    Returns:
        (loss [N], nll [N]) in fp32.
    """
    lprobs = F.log_softmax(logits.float(), dim=-1)
    nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    if epsilon <= 0:
        return nll, nll
    smooth = -lprobs.mean(-1)
    return (1.0 - epsilon) * nll + epsilon * smooth, nll
