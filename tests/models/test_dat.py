"""DA-Transformer model pieces: links, graph sizes, glancing selection and schedule."""
import argparse

import pytest
import torch
from fairseq.data import Dictionary

from nat_plugins.decoding.strategy import DecodingOptions
from nat_plugins.errors import NATUserError
from nat_plugins.models.dat import DATModel, dat_tiny, parse_upsample_scale
from nat_plugins.modules.dag_links import DAGLinks
from nat_plugins.modules.glancing import GlanceSchedule, GlancingSampler


class _Task:
    def __init__(self, d):
        self.source_dictionary = self.target_dictionary = d


def build_dat(upsample_scale=None, dropout=0.0, seed=0, frame=False):
    d = Dictionary()
    for w in "a b c d e f g h".split():
        d.add_symbol(w)
    args = argparse.Namespace(dropout=dropout, upsample_scale=upsample_scale, max_source_positions=64,
                              dag_frame_target=frame)
    dat_tiny(args)
    torch.manual_seed(seed)
    return DATModel.build_model(args, _Task(d)), d


# ---- targets ----------------------------------------------------------------
def test_dag_target_is_the_content_or_the_framed_content():
    pad, eos = 1, 2
    target = torch.tensor([[5, 6, 7, eos], [8, eos, pad, pad]])
    plain, _ = build_dat()
    tokens, lengths, content = plain.dag_target(target)
    assert tokens.tolist() == [[5, 6, 7], [8, pad, pad]] and lengths.tolist() == [3, 1]
    assert content.tolist() == [[True, True, True], [True, False, False]]
    framed, d = build_dat(frame=True)
    bos = d.bos()
    tokens, lengths, content = framed.dag_target(target)
    assert tokens.tolist() == [[bos, 5, 6, 7, eos], [bos, 8, eos, pad, pad]] and lengths.tolist() == [5, 3]
    assert content.tolist() == [[False, True, True, True, False], [False, True, False, False, False]]


# ---- links ------------------------------------------------------------------
def test_links_are_a_distribution_over_later_vertices():
    torch.manual_seed(0)
    links_mod = DAGLinks(embed_dim=16, num_heads=4, max_positions=32)
    lengths = torch.tensor([7, 4, 1])
    links = links_mod(torch.randn(3, 7, 16), lengths)
    assert links.shape == (3, 7, 7) and links.dtype == torch.float32
    for b, P in enumerate(lengths.tolist()):
        for i in range(7):
            row = links[b, i]
            allowed = torch.zeros(7, dtype=torch.bool)
            allowed[i + 1:P] = True
            assert torch.isneginf(row[~allowed]).all(), (b, i)
            if i < P - 1:
                assert torch.isfinite(row[allowed]).all()
                assert torch.logsumexp(row[allowed], 0).item() == pytest.approx(0.0, abs=1e-5), (b, i)
            else:  # the last vertex (and padding) has no successor
                assert torch.isneginf(row).all()


def test_links_mix_heads_with_a_learned_gate_and_have_finite_gradients():
    torch.manual_seed(1)
    mod = DAGLinks(embed_dim=8, num_heads=2, max_positions=16)
    feats = torch.randn(2, 5, 8, requires_grad=True)
    links = mod(feats, torch.tensor([5, 3]))
    links[torch.isfinite(links)].sum().backward()
    for p in [feats, mod.gate.weight, mod.query.weight, mod.key.weight, mod.link_positions.weight]:
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert mod.gate.weight.grad.abs().sum() > 0


# ---- graph sizes and decoding scale ------------------------------------------------
def test_upsample_scale_parsing():
    assert parse_upsample_scale("8") == (8.0, 8.0)
    assert parse_upsample_scale("4~8") == (4.0, 8.0)
    for bad in ("0.5", "8~4", "x", "1~2~3"):
        with pytest.raises(NATUserError):
            parse_upsample_scale(bad)


def test_graph_is_lambda_times_source_and_inputs_are_position_only():
    model, d = build_dat("3")
    eos, pad = d.eos(), d.pad()
    a = d.index("a")
    src = torch.tensor([[a, a, a, eos], [pad, pad, a, eos]])  # left-padded sources of 3 and 1 tokens
    lengths = model.graph_lengths(src, 3.0)
    assert lengths.tolist() == [9, 3]
    canvas = model.graph_canvas(lengths)
    assert canvas.shape == (2, 9)
    assert canvas[0].eq(model.unk).all()
    assert canvas[1, :3].eq(model.unk).all() and canvas[1, 3:].eq(pad).all()
    model.eval()
    enc = model.encode(src, torch.tensor([4, 2]))
    logits, links = model.dag_forward(enc, canvas)
    assert logits.shape[:2] == (2, 9) and links.shape == (2, 9, 9)
    assert torch.isneginf(links[1, 2:]).all()  # beyond the second graph's last vertex


def test_range_scale_is_sampled_in_training_and_decode_scale_must_match():
    model, _ = build_dat("4~8")
    model.train()
    seen = {round(model.upsample_scale(), 3) for _ in range(20)}
    assert len(seen) > 1 and all(4 <= s <= 8 for s in seen)
    model.eval()
    model.prepare_for_decoding(DecodingOptions())
    assert model.upsample_scale() == 8.0
    model.prepare_for_decoding(DecodingOptions(extra={"decode_upsample_scale": 5.0}))
    assert model.upsample_scale() == 5.0
    with pytest.raises(NATUserError, match="does not match"):
        model.prepare_for_decoding(DecodingOptions(extra={"decode_upsample_scale": 9.0}))
    fixed, _ = build_dat("4")
    with pytest.raises(NATUserError, match="use 4"):
        fixed.prepare_for_decoding(DecodingOptions(extra={"decode_upsample_scale": 8.0}))
    with pytest.raises(NATUserError, match="length-beam"):
        fixed.prepare_for_decoding(DecodingOptions(length_beam=3))


# ---- glancing -----------------------------------------------------------------------
def test_glancing_picks_round_of_wrong_times_p_only_aligned_vertices():
    sampler = GlancingSampler()
    # 3 sentences, 8 vertices; alignment = target index on the best path, -1 elsewhere.
    alignment = torch.tensor([
        [0, -1, 1, 2, -1, 3, -1, 4],     # T = 5
        [0, 1, -1, -1, 2, -1, -1, -1],   # T = 3
        [0, -1, -1, -1, -1, -1, -1, 1],  # T = 2
    ])
    correct = torch.tensor([
        [1, 1, 0, 0, 0, 1, 0, 0],        # aligned & correct: vertices 0, 5 -> same = 2, wrong = 3
        [0, 0, 0, 0, 0, 0, 0, 0],        # same = 0, wrong = 3
        [1, 0, 0, 0, 0, 0, 0, 1],        # same = 2, wrong = 0
    ], dtype=torch.bool)
    # round half up: 3 * 0.5 = 1.5 -> 2; 3 * 0.5 -> 2; 0 -> 0
    assert sampler.count(alignment.ge(0), correct, 0.5).tolist() == [2, 2, 0]
    assert sampler.count(alignment.ge(0), correct, 1.0).tolist() == [3, 3, 0]
    picked_any = torch.zeros_like(correct)
    for seed in range(30):
        g = torch.Generator().manual_seed(seed)
        glanced = sampler.select(alignment, correct, 0.5, generator=g)
        assert glanced.sum(1).tolist() == [2, 2, 0]
        assert not (glanced & alignment.lt(0)).any()  # only aligned vertices
        picked_any |= glanced
    # every aligned vertex of sentence 0 is eligible (correct ones too), as in GLAT
    assert picked_any[0].tolist() == alignment[0].ge(0).tolist()

    target = torch.tensor([[11, 12, 13, 14, 15], [21, 22, 23, 1, 1], [31, 32, 1, 1, 1]])
    canvas = torch.full((3, 8), 3)
    glanced = torch.zeros(3, 8, dtype=torch.bool)
    glanced[0, 3] = glanced[1, 4] = True
    out = sampler.glance_inputs(canvas, target, alignment, glanced)
    assert out[0, 3] == 13 and out[1, 4] == 23
    assert out.masked_fill(glanced, 3).eq(3).all()


def test_glance_schedule_anneals_by_update_number():
    s = GlanceSchedule("0.5:0.1@200k")
    assert s(0) == pytest.approx(0.5)
    assert s(100_000) == pytest.approx(0.3)
    assert s(200_000) == pytest.approx(0.1)
    assert s(10**7) == pytest.approx(0.1)
    assert GlanceSchedule("0.3")(12345) == pytest.approx(0.3)
    assert GlanceSchedule("0")(0) == 0.0
    for bad in ("0.5:0.1", "1.5", "a:b@c"):
        with pytest.raises(ValueError):
            GlanceSchedule(bad)
