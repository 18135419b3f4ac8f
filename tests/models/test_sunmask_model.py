"""SUNMASK's mask input (§2.2): [E(x); m / sqrt(d) repeated d times] -> d, and what the mask changes."""
import math

import torch

from model_builders import build_tiny
from nat_plugins.models.sunmask import SUNMASKModel, sunmask_tiny
from nat_plugins.models.sundae import SUNDAEModel


def build(**overrides):
    model, _, d = build_tiny(SUNMASKModel, sunmask_tiny, **overrides)
    return model, d


def test_is_a_sundae_model_with_its_own_family():
    model, _ = build()
    assert isinstance(model, SUNDAEModel) and model.decoding_family == "sunmask"
    d = model.decoder.embed_dim
    assert tuple(model.mask_input.weight.shape) == (d, 2 * d)


def test_mask_is_repeated_scaled_and_concatenated():
    model, dic = build()
    seen = {}
    model.mask_input.register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0].detach()))
    tokens = torch.tensor([[dic.index("a"), dic.index("b"), dic.index("c")]])
    mask = torch.tensor([[True, False, True]])
    out = model.masked_embeddings(tokens, mask)
    x = seen["x"]
    d = model.decoder.embed_dim
    emb = model.decoder.embed_scale * model.decoder.embed_tokens(tokens)
    assert torch.allclose(x[..., :d], emb)
    expected = mask.float()[..., None].expand(1, 3, d) / math.sqrt(d)
    assert torch.equal(x[..., d:], expected)
    # Identity init on the embedding half: out = E(x) + m * (W_m 1 / sqrt(d)) + b
    w_m = model.mask_input.weight[:, d:].sum(1) / math.sqrt(d)
    assert torch.allclose(out, emb + mask.float()[..., None] * w_m + model.mask_input.bias, atol=1e-6)


def test_logits_depend_on_the_mask_and_default_mask_is_all_zero():
    model, dic = build()
    tokens = torch.tensor([[dic.index("a"), dic.index("b"), dic.index("c"), dic.eos()]])
    enc = model.encode(torch.tensor([[dic.index("a"), dic.eos()]]), torch.tensor([2]))
    ld = torch.tensor([2])
    none = model.canvas_logits(tokens, enc, ld)
    zeros = model.canvas_logits(tokens, enc, ld, torch.zeros_like(tokens, dtype=torch.bool))
    ones = model.canvas_logits(tokens, enc, ld, torch.ones_like(tokens, dtype=torch.bool))
    assert torch.equal(none, zeros)
    assert not torch.allclose(zeros, ones)
    # The mask reaches the output through the parameters of mask_input only.
    ones.sum().backward()
    assert model.mask_input.weight.grad[:, model.decoder.embed_dim:].abs().sum() > 0
