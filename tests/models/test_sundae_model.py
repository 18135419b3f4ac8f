"""SUNDAE model pieces: canvas and its slack, length predictor (App. B), length
embedding, prior/noise vocabulary (A.3, J), read-out, chunked sampling, and
configs of earlier versions."""
import argparse
import contextlib
import math

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
    model, d = build(sundae_canvas_slack=0.0)
    a, b, c = d.index("a"), d.index("b"), d.index("c")
    pad, eos = d.pad(), d.eos()
    target = torch.tensor([[a, b, c, eos], [a, eos, pad, pad]])
    canvas, in_canvas, length_d = model.gold_canvas(target)
    # widths 2*ceil(3/2)=4 and 2*ceil(1/2)=2; l_d = 2 and 1
    assert canvas.tolist() == [[a, b, c, eos], [a, eos, pad, pad]]
    assert in_canvas.sum(1).tolist() == [4, 2]
    assert length_d.tolist() == [2, 1]


def test_length_canvas_slack_adds_end_positions_to_train_and_decode():
    model, d = build()  # sundae_tiny: slack 0.25, max canvas 32
    assert model.canvas_slack == 0.25
    a, b, c = d.index("a"), d.index("b"), d.index("c")
    pad, eos = d.pad(), d.eos()
    target = torch.tensor([[a, b, c, eos], [a, eos, pad, pad]])
    canvas, in_canvas, length_d = model.gold_canvas(target)
    # 2*ceil(3/2) = 4 + ceil(0.25 * 4) = 5;  2*ceil(1/2) = 2 + ceil(0.5) = 3
    assert canvas.tolist() == [[a, b, c, eos, eos], [a, eos, eos, pad, pad]]
    assert in_canvas.sum(1).tolist() == [5, 3]
    assert length_d.tolist() == [2, 1]  # the length embedding still says l_d
    # The same widths by hand for every nominal length, capped at the maximum canvas.
    lengths = torch.arange(0, 40)
    by_hand = [min(32, max(2, 2 * ((l + 1) // 2) + math.ceil(0.25 * 2 * ((l + 1) // 2)))) for l in range(40)]
    assert model.canvas_widths(lengths).tolist() == by_hand
    # Decoding: the prior canvas of a predicted length 2 l_d = 8 has 10 positions.
    tokens, ld = model.initial_canvas(torch.tensor([8, 2]), generator=torch.Generator().manual_seed(0))
    assert tokens.ne(pad).sum(1).tolist() == [10, 3] and ld.tolist() == [4, 1]
    # forward() without length_d recovers l_d from the width.
    assert model.width_classes(torch.tensor([10, 3, 5, 12])).tolist() == [4, 1, 2, 4]
    big, _ = build(sundae_canvas_slack=1.0)
    assert big.canvas_widths(torch.tensor([4, 31])).tolist() == [8, 32]
    # The fixed canvas has no slack to add.
    fixed, _ = build(sundae_canvas="fixed", sundae_max_canvas=12)
    assert fixed.canvas_widths(torch.tensor([1, 4, 12])).tolist() == [12, 12, 12]


def test_bad_model_options_are_user_errors():
    from nat_plugins.errors import NATUserError

    for bad in (dict(sundae_canvas_slack=-0.5), dict(sundae_decode_samples=0), dict(sundae_decode_temperature=-1.0)):
        with pytest.raises(NATUserError):
            build(**bad)


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


FILLED = "a b c d e f g h madeupword0000 madeupword0001"  # with fairseq's vocabulary fillers


def test_prior_is_uniform_over_the_whole_vocabulary_but_pad_and_bos():
    model, d = build(sundae_canvas_slack=0.0, words=FILLED)
    everything = [i for i in range(len(d)) if i not in (d.pad(), d.bos())]
    assert d.eos() in everything and d.unk() in everything and any(s.startswith("madeupword") for s in d.symbols)
    assert model.noise_symbols.tolist() == everything  # A.3 / App. J: U({1..v}) over the model's vocabulary
    assert model.output_forbidden.nonzero().view(-1).tolist() == sorted([d.pad(), d.bos()])
    g = torch.Generator().manual_seed(0)
    tokens, length_d = model.initial_canvas(torch.tensor([6, 2]), generator=g)
    assert tokens.shape == (2, 6)
    assert tokens[1, 2:].eq(d.pad()).all()
    assert length_d.tolist() == [3, 1]
    many, _ = model.initial_canvas(torch.full((4000,), 32), generator=g)
    counts = torch.bincount(many.view(-1), minlength=len(d)).float()
    assert counts[d.pad()] == 0 and counts[d.bos()] == 0
    expected = many.numel() / len(everything)
    assert ((counts[everything] - expected).abs() / expected).max() < 0.1  # eos, unk, fillers included
    s = model.sample(torch.zeros(300, 4, len(d)), 1.0, generator=g)
    assert s.ne(d.pad()).all() and s.ne(d.bos()).all()
    assert s.eq(d.eos()).any() and s.eq(d.unk()).any()


def fillers_of(d):
    return {i for i, s in enumerate(d.symbols) if s.startswith("madeupword")}


def test_ordinary_noise_symbols_are_the_earlier_vocabulary():
    model, d = build(sundae_noise_symbols="ordinary", words=FILLED)
    assert fillers_of(d)
    fillers = fillers_of(d)
    assert model.noise_symbols.tolist() == [i for i in range(d.nspecial, len(d)) if i not in fillers]
    allowed = (~model.output_forbidden).nonzero().view(-1).tolist()
    assert allowed == sorted([d.eos(), d.unk()] + model.noise_symbols.tolist())


def test_read_out_drops_end_positions_by_default():
    model, d = build()
    a, b, c = d.index("a"), d.index("b"), d.index("c")
    eos, pad = d.eos(), d.pad()
    tokens = torch.tensor([[eos, a, eos, b, c, eos], [a, b, c, eos, pad, pad], [eos, eos, eos, pad, pad, pad],
                           [c, b, a, c, b, a]])
    lengths, cleaned = model.read_out(tokens)
    assert lengths.tolist() == [3, 3, 0, 6]
    assert cleaned.tolist() == [[a, b, c, eos, eos, eos], [a, b, c, eos, pad, pad], [eos, eos, eos, pad, pad, pad],
                                [c, b, a, c, b, a]]
    # Earlier checkpoints cut at the first <eos>.
    legacy, _ = build(sundae_read_out="cut-at-end")
    lengths, cleaned = legacy.read_out(tokens)
    assert lengths.tolist() == [0, 3, 0, 6]
    assert cleaned.tolist() == [[eos] * 6, [a, b, c, eos, pad, pad], [eos, eos, eos, pad, pad, pad],
                                [c, b, a, c, b, a]]


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
        assert args.sundae_decode_samples == 16  # §3.1 / Table 1: n = 16
    else:
        assert (args.encoder_layers, args.encoder_embed_dim, args.encoder_ffn_embed_dim) == (2, 128, 512)
        assert args.sundae_decode_samples == 4 and args.sundae_canvas_slack == 0.25
    assert 0.1 <= args.sundae_decode_temperature <= 0.6  # §3.1's range
    assert (args.sundae_noise_symbols, args.sundae_read_out) == ("all", "drop-end")


def test_config_of_an_earlier_version_keeps_its_behaviour():
    """fairseq re-runs the arch function on a loaded checkpoint's config."""
    from omegaconf import OmegaConf, open_dict

    from nat_plugins.models.sundae import sundae_small

    fresh = argparse.Namespace()
    sundae_small(fresh)
    earlier = {k: v for k, v in vars(fresh).items()
               if k not in ("sundae_canvas_slack", "sundae_noise_symbols", "sundae_read_out", "sundae_decode_samples",
                            "sundae_decode_temperature")}
    for cfg in (argparse.Namespace(**earlier), OmegaConf.create(earlier)):
        with open_dict(cfg) if OmegaConf.is_config(cfg) else contextlib.nullcontext():
            sundae_small(cfg)
        assert (cfg.sundae_canvas_slack, cfg.sundae_noise_symbols, cfg.sundae_read_out, cfg.sundae_decode_samples,
                cfg.sundae_decode_temperature) == (0.0, "ordinary", "cut-at-end", 1, 1.0)
    # A command line holds the new options as None: new defaults.
    cli = argparse.Namespace(**earlier, sundae_canvas_slack=None, sundae_noise_symbols=None, sundae_read_out=None,
                             sundae_decode_samples=None, sundae_decode_temperature=None)
    sundae_small(cli)
    assert (cli.sundae_canvas_slack, cli.sundae_read_out, cli.sundae_decode_samples) == (0.25, "drop-end", 4)
    # Such a model decodes like the earlier code: widths without slack, cut at <eos>.
    model, d = build(**{k: getattr(cfg, k) for k in ("sundae_canvas_slack", "sundae_noise_symbols",
                                                     "sundae_read_out")})
    assert model.canvas_widths(torch.tensor([3, 8])).tolist() == [4, 8]
    assert model.noise_symbols.min() >= d.nspecial


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


def _whole_tensor_oracle(model, logits, temperature, generator):
    """The sampling code before issue #20, kept verbatim as the oracle: full
    [N, W, V] softmax/cumsum, log-softmax and gather."""
    restricted = model.restrict(logits)
    if temperature <= 0:
        tokens = restricted.argmax(-1)
    else:
        cdf = torch.softmax(restricted / temperature, dim=-1).cumsum(-1)
        u = (1.0 - torch.rand(cdf.shape[:-1] + (1,), device=cdf.device, generator=generator)) * cdf[..., -1:]
        tokens = torch.searchsorted(cdf, u).squeeze(-1).clamp(max=cdf.size(-1) - 1)
    log_probs = torch.log_softmax(restricted, -1)
    return tokens, log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), log_probs


@pytest.mark.parametrize("chunk", [1 << 20, 64])
@pytest.mark.parametrize("temperature", [0.0, 0.3, 1.0])
def test_chunked_sampling_matches_the_whole_tensor_computation(monkeypatch, chunk, temperature):
    import nat_plugins.models.sundae as sundae

    monkeypatch.setattr(sundae, "_CHUNK_ELEMENTS", chunk)  # 64 elements: 5 rows per chunk
    model, d = build()
    logits = torch.randn(5, 7, len(d), generator=torch.Generator().manual_seed(1)) * 3
    before = logits.clone()
    tokens, logp = model.pick_tokens(logits, temperature, generator=torch.Generator().manual_seed(2))
    o_tokens, o_logp, o_log_probs = _whole_tensor_oracle(model, logits, temperature, torch.Generator().manual_seed(2))
    assert torch.equal(logits, before)  # the decoder's logits are left alone
    assert torch.equal(tokens, o_tokens) and torch.equal(logp, o_logp)  # bit-identical
    assert torch.equal(model.sample(logits, temperature, generator=torch.Generator().manual_seed(2)), o_tokens)
    # token_logp of any tokens, forbidden ones included (-inf as with a log-softmax).
    any_tokens = torch.randint(0, len(d), (5, 7), generator=torch.Generator().manual_seed(3))
    any_tokens[0, 0], any_tokens[0, 1] = d.pad(), d.bos()
    got = model.token_logp(logits, any_tokens)
    assert torch.isinf(got[0, :2]).all()
    assert torch.equal(got, o_log_probs.gather(-1, any_tokens.unsqueeze(-1)).squeeze(-1))
