"""SUNDAE model pieces: canvas, length predictor (App. B), length embedding, prior."""
import argparse

import pytest
import torch

from nat_plugins.models.sundae import SUNDAEModel, sundae_tiny
from model_builders import build_tiny
from nat_plugins.modules.sundae_length_predictor import SundaeLengthPredictor, downsample_length


def build(**overrides):
    model, _, d = build_tiny(SUNDAEModel, sundae_tiny, **overrides)
    return model, d


def test_downsampled_length_is_ceil_half():
    assert downsample_length(torch.tensor([0, 1, 2, 3, 4, 7])).tolist() == [0, 1, 1, 2, 2, 4]


def test_gold_canvas_length_mode_puts_eos_after_the_end():
    model, d = build()
    a, b, c = d.index("a"), d.index("b"), d.index("c")
    pad, eos = d.pad(), d.eos()
    target = torch.tensor([[a, b, c, eos], [a, eos, pad, pad]])
    canvas, in_canvas, length_d = model.gold_canvas(target)
    # widths 2*ceil(3/2)=4 and 2*ceil(1/2)=2; l_d = 2 and 1
    assert canvas.tolist() == [[a, b, c, eos], [a, eos, pad, pad]]
    assert in_canvas.sum(1).tolist() == [4, 2]
    assert length_d.tolist() == [2, 1]


def test_gold_canvas_fixed_mode_and_cropping():
    model, d = build(sundae_canvas="fixed", sundae_max_canvas=5)
    a, b = d.index("a"), d.index("b")
    eos = d.eos()
    target = torch.tensor([[a, b, eos, 1, 1, 1, 1], [a, b, a, b, a, b, eos]])
    canvas, in_canvas, length_d = model.gold_canvas(target)
    assert canvas.tolist() == [[a, b, eos, eos, eos], [a, b, a, b, a]]  # second row cropped to 5
    assert in_canvas.all()
    assert length_d.tolist() == [1, 3]


def test_length_embedding_is_prepended_and_reorder_still_works():
    model, d = build()
    src = torch.tensor([[4, 5, 6, d.eos()], [d.pad(), 7, 8, d.eos()]])
    enc = model.encode(src, torch.tensor([4, 3]))
    out = model.with_length(enc, torch.tensor([3, 1]))
    assert out["encoder_out"][0].shape[0] == enc["encoder_out"][0].shape[0] + 1
    assert torch.equal(out["encoder_out"][0][0], model.length_embed.weight[[3, 1]])
    assert out["encoder_padding_mask"][0][:, 0].eq(False).all()
    assert torch.equal(out["encoder_padding_mask"][0][:, 1:], enc["encoder_padding_mask"][0])
    # The generator reorders the plain encoder output; prepending commutes with it.
    order = torch.tensor([1, 1, 0])
    a = model.with_length(model.encoder.reorder_encoder_out(enc, order), torch.tensor([1, 1, 3]))
    b = model.encoder.reorder_encoder_out(out, order)
    assert torch.equal(a["encoder_out"][0], b["encoder_out"][0])
    assert torch.equal(a["encoder_padding_mask"][0], b["encoder_padding_mask"][0])


def test_length_loss_sends_no_gradient_into_the_encoder():
    model, d = build()
    model.train()
    src = torch.tensor([[4, 5, 6, d.eos()], [d.pad(), 7, 8, d.eos()]])
    enc = model.encode(src, torch.tensor([4, 3]))
    loss = model.length_loss(enc, model.source_lengths(src), torch.tensor([2, 1]))
    loss.backward()
    enc_grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is None or g.abs().sum() == 0 for g in enc_grads)
    assert model.length_predictor.proj.weight.grad.abs().sum() > 0


def test_length_predictor_architecture_matches_appendix_b():
    model, _ = build(sundae_length_hidden=128, sundae_length_blocks=6)
    lp = model.length_predictor
    assert isinstance(lp, SundaeLengthPredictor)
    assert lp.proj.out_features == 128 and len(lp.blocks) == 6
    assert lp.num_classes == (32 + 1) // 2 + 1  # l_d in 0..16 for a 32-position canvas


def test_predict_lengths_returns_even_canvas_widths_best_first():
    model, d = build()
    src = torch.tensor([[4, 5, 6, d.eos()], [d.pad(), d.pad(), d.pad(), d.eos()]])
    enc = model.encode(src, torch.tensor([4, 1]))
    lengths, logp = model.predict_lengths(enc, src, k=3)
    assert lengths.shape == (2, 3)
    assert lengths[0].remainder(2).eq(0).all() and lengths[0].gt(0).all()
    assert lengths[1].eq(0).all()  # empty source
    assert (logp[0, :-1] >= logp[0, 1:]).all()


def test_no_length_prediction_uses_fixed_canvas_and_no_embedding():
    model, d = build(sundae_no_length_prediction=True)
    assert model.length_predictor is None and not hasattr(model, "length_embed")
    src = torch.tensor([[4, 5, d.eos()]])
    enc = model.encode(src, torch.tensor([3]))
    lengths, _ = model.predict_lengths(enc, src, k=3)
    assert lengths.tolist() == [[32]]
    assert model.with_length(enc, torch.tensor([1])) is enc
    tokens, _ = model.initial_canvas(lengths.view(-1))
    assert tokens.shape == (1, 32)


def test_prior_and_samples_never_hold_special_symbols():
    model, d = build()
    g = torch.Generator().manual_seed(0)
    tokens, length_d = model.initial_canvas(torch.tensor([6, 2]), generator=g)
    assert tokens.shape == (2, 6)
    assert tokens[1, 2:].eq(d.pad()).all()
    real = tokens[tokens.ne(d.pad())]
    assert real.ge(d.nspecial).all()
    assert length_d.tolist() == [3, 1]
    logits = torch.zeros(3, 4, len(d))
    s = model.sample(logits, 1.0, generator=g)
    assert s.ne(d.pad()).all() and s.ne(d.bos()).all()


def test_cut_at_end_and_model_score():
    model, d = build()
    a, b = d.index("a"), d.index("b")
    eos, pad = d.eos(), d.pad()
    tokens = torch.tensor([[a, eos, b, b], [a, b, pad, pad]])
    lengths, cleaned = model.cut_at_end(tokens)
    assert lengths.tolist() == [1, 2]
    assert cleaned.tolist() == [[a, eos, eos, eos], [a, b, pad, pad]]
    src = torch.tensor([[4, 5, eos], [6, 7, eos]])
    enc = model.encode(src, torch.tensor([3, 3]))
    length_d = torch.tensor([2, 1])
    pos, score = model.model_score(cleaned, enc, length_d)
    lp = torch.log_softmax(model.restrict(model.canvas_logits(cleaned, enc, length_d)), -1)
    by_hand = (lp[0, 0, a] + lp[0, 1, eos] + lp[0, 2, eos] + lp[0, 3, eos]) / 4
    assert torch.allclose(score[0], by_hand, atol=1e-6)
    assert torch.allclose(score[1], (lp[1, 0, a] + lp[1, 1, b]) / 2, atol=1e-6)
    assert pos[1, 2:].eq(0).all()


@pytest.mark.parametrize("arch", ["sundae_base", "sundae_small"])
def test_architectures(arch):
    from fairseq.models import ARCH_CONFIG_REGISTRY

    args = argparse.Namespace()
    ARCH_CONFIG_REGISTRY[arch](args)
    if arch == "sundae_base":
        assert (args.encoder_layers, args.decoder_layers, args.encoder_embed_dim, args.encoder_attention_heads,
                args.encoder_ffn_embed_dim, args.dropout) == (6, 6, 512, 8, 2048, 0.1)
        assert args.sundae_canvas == "fixed" and args.sundae_max_canvas == 128
    else:
        assert (args.encoder_layers, args.encoder_embed_dim, args.encoder_ffn_embed_dim) == (2, 128, 512)


def test_sampling_follows_the_tempered_distribution_and_argmax_at_zero():
    model, d = build()
    V = len(d)
    logits = torch.full((V,), -1e4)
    a, b, c = d.index("a"), d.index("b"), d.index("c")
    logits[a], logits[b], logits[c] = 2.0, 1.0, 0.0
    logits[d.bos()] = 5.0  # forbidden: never sampled even when likeliest
    rows = logits.expand(20000, 1, V).contiguous()
    g = torch.Generator().manual_seed(0)
    for tau in (1.0, 0.5):
        x = model.sample(rows, tau, generator=g).view(-1)
        emp = torch.bincount(x, minlength=V).float() / x.numel()
        p = torch.softmax(torch.tensor([2.0, 1.0, 0.0]) / tau, 0)
        assert torch.allclose(emp[[a, b, c]], p, atol=0.015)
        assert emp[d.bos()] == 0 and emp[d.pad()] == 0
    assert model.sample(rows[:3], 0.0).view(-1).tolist() == [a, a, a]
