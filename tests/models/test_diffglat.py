"""DiffGLAT model: transitions over layer groups, hidden states between transitions, decoding options."""
import argparse

import pytest
import torch
from fairseq.modules import FairseqDropout

from model_builders import ToyTask, build_tiny, toy_dictionary
from nat_plugins.decoding.strategy import DecodingOptions
from nat_plugins.errors import NATUserError
from nat_plugins.models.dat import DATModel
from nat_plugins.models.diffglat import DiffGLATModel, diffglat_base, diffglat_small, diffglat_tiny


def build_diffglat(dropout=0.0, **overrides):
    overrides.setdefault("max_source_positions", 64)
    model, task, d = build_tiny(DiffGLATModel, diffglat_tiny, **overrides)
    for module in model.modules():
        if isinstance(module, FairseqDropout):
            module.p = dropout
    return model, d


def _source(d):
    a, b, eos, pad = d.index("a"), d.index("b"), d.eos(), d.pad()
    src = torch.tensor([[a, b, a, eos], [pad, pad, b, eos]])
    return src, torch.tensor([4, 2])


def test_archs_group_layers_into_transitions():
    for arch, layers, per, groups in ((diffglat_base, 6, 3, 2), (diffglat_small, 2, 1, 2), (diffglat_tiny, 2, 1, 2)):
        args = argparse.Namespace()
        arch(args)
        assert (args.decoder_layers, args.layers_per_transition, args.diffusion_iterations) == (layers, per, 3)
        assert args.upsample_scale == "4" and layers // per == groups
    model, _ = build_diffglat()
    assert model.num_transitions() == 6 and model.num_transitions(1) == 2
    assert [model.transition_layers(k) for k in range(4)] == [(0, 1), (1, 2), (0, 1), (1, 2)]
    model3, _ = build_diffglat(decoder_layers=6, layers_per_transition=3)
    assert [model3.transition_layers(k) for k in range(3)] == [(0, 3), (3, 6), (0, 3)]


def test_bad_transition_sizes_are_clear_errors():
    with pytest.raises(NATUserError, match="--layers-per-transition 3 must divide the 2 decoder layers"):
        build_diffglat(layers_per_transition=3)
    with pytest.raises(NATUserError, match="--layers-per-transition 0"):
        build_diffglat(layers_per_transition=0)
    with pytest.raises(NATUserError, match="--diffusion-iterations 0"):
        build_diffglat(diffusion_iterations=0)


def test_hidden_states_not_tokens_pass_between_transitions_and_iterations(monkeypatch):
    model, d = build_diffglat()
    decoder = model.decoder
    calls, outputs, embeds = [], [], []
    real_run, real_out, real_embed = decoder.run_layers, decoder.output_layer, decoder.embed

    def run_layers(x, encoder_out, padding_mask, start=0, end=None):
        y = real_run(x, encoder_out, padding_mask, start, end)
        calls.append((x, y, start, end))
        return y

    def output_layer(x):
        outputs.append(x)
        return real_out(x)

    def embed(tokens, token_embeddings=None):
        embeds.append(tokens)
        return real_embed(tokens, token_embeddings)

    monkeypatch.setattr(decoder, "run_layers", run_layers)
    monkeypatch.setattr(decoder, "output_layer", output_layer)
    monkeypatch.setattr(decoder, "embed", embed)
    model.prepare_for_decoding(DecodingOptions(iterations=3))
    src, src_len = _source(d)
    enc = model.encode(src, src_len)
    lengths = model.graph_lengths(src, model.decode_upsample_scale)
    token_lp, links = model.dag_graph(enc, lengths)
    # 3 passes x 2 groups: six transitions, layer groups alternating, parameters shared by the passes
    assert [(s, e) for _, _, s, e in calls] == [(0, 1), (1, 2)] * 3
    # each transition reads the previous one's raw output tensor itself: nothing is decoded in between
    for (_, prev_out, _, _), (x, _, _, _) in zip(calls, calls[1:]):
        assert x is prev_out
    assert len(embeds) == 1 and embeds[0].eq(model.unk).sum() + embeds[0].eq(model.pad).sum() == embeds[0].numel()
    assert len(outputs) == 1  # token distribution of the last transition only
    assert torch.equal(outputs[0], decoder.finalize(calls[-1][1]))
    assert token_lp.shape[:2] == links.shape[:2] == (2, int(lengths.max()))


def test_one_pass_is_the_dat_decoder_and_more_passes_rerun_the_stack():
    model, d = build_diffglat()
    src, src_len = _source(d)
    enc = model.encode(src, src_len)
    canvas = model.graph_canvas(model.graph_lengths(src, 4.0))
    model.prepare_for_decoding(DecodingOptions(iterations=1))
    one = model.dag_forward(enc, canvas)
    # DAT's single decoder pass over all layers is exactly DiffGLAT with one iteration
    dat = DATModel.dag_forward(model, enc, canvas)
    assert torch.allclose(one[0], dat[0]) and torch.allclose(one[1], dat[1], equal_nan=True)
    model.prepare_for_decoding(DecodingOptions(iterations=2))
    two = model.dag_forward(enc, canvas)
    # by hand: the stack run twice on hidden states
    x, mask = model.decoder.embed(canvas)
    for _ in range(2):
        x = model.decoder.run_layers(x, enc, mask)
    assert torch.allclose(two[0], model.decoder.output_layer(model.decoder.finalize(x)), atol=1e-6)
    assert not torch.allclose(one[0], two[0])


def test_decode_iterations_default_to_the_trained_ones_and_must_be_positive():
    model, _ = build_diffglat(diffusion_iterations=2)
    assert model.default_decode_iterations == 2
    model.prepare_for_decoding(DecodingOptions(iterations=None))
    assert model.decode_iterations == 2
    model.prepare_for_decoding(DecodingOptions(iterations=5))
    assert model.decode_iterations == 5
    with pytest.raises(NATUserError, match="--decode-iterations 0"):
        model.prepare_for_decoding(DecodingOptions(iterations=0))
    with pytest.raises(NATUserError, match="length-beam"):  # DAT's own checks still apply
        model.prepare_for_decoding(DecodingOptions(iterations=1, length_beam=2))
    assert DiffGLATModel.default_strategy == "dag_joint_viterbi" and model.decoding_family == "dat"


def test_glanced_states_replace_only_glanced_vertices_by_input_embeddings():
    model, d = build_diffglat()
    states = torch.randn(2, 5, model.decoder.embed_dim)
    tokens = torch.full((2, 5), model.unk)
    tokens[0, 2], tokens[1, 4] = d.index("c"), d.index("d")
    glanced = tokens.ne(model.unk)
    out = model.glanced_states(states, tokens, glanced)
    embedded, _ = model.decoder.embed(tokens)  # scaled token embedding + position (dropout 0 here)
    assert torch.equal(out[glanced], embedded[glanced])
    assert torch.equal(out[~glanced], states[~glanced])


def test_training_process_uses_the_trained_iterations():
    model, d = build_diffglat(diffusion_iterations=2)
    model.prepare_for_decoding(DecodingOptions(iterations=1))
    seen = []
    real = model.transition

    def spy(states, encoder_out, padding_mask, k):
        seen.append(k)
        return real(states, encoder_out, padding_mask, k)

    model.transition = spy
    src, src_len = _source(d)
    model.train()
    model(src, src_len)
    assert seen == [0, 1, 2, 3]
    seen.clear()
    model.eval()
    model(src, src_len)
    assert seen == [0, 1]


def test_toy_task_builds_a_checkpointable_model():
    d = toy_dictionary()
    args = argparse.Namespace(dropout=0.0, max_source_positions=64)
    diffglat_tiny(args)
    model = DiffGLATModel.build_model(args, ToyTask(d))
    state = model.state_dict()
    assert "noise_symbols" not in state  # derived from the dictionary, not saved
    assert model.noise_symbols.tolist() == list(range(d.nspecial, len(d)))
