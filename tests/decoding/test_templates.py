"""Target templates: syntax, width rules, and fixed tokens surviving every step (hand-scripted models)."""
import pytest
import torch

from model_builders import build_tiny
from nat_plugins.decoding.generator import NATGenerator
from nat_plugins.decoding.strategy import DecodingOptions
from nat_plugins.decoding.sunmask_sampling import SunmaskSample
from nat_plugins.decoding.templates import (
    BLANK, GAP, TemplateBatch, parse_template, resolve_template, respect_template, split_inline,
)
from nat_plugins.errors import NATUserError
from nat_plugins.models.sunmask import SUNMASKModel, sunmask_tiny


def test_inline_syntax_and_parsing():
    assert split_inline("w1 w2 ||| W1 <gap> W3") == ("w1 w2", "W1 <gap> W3")
    assert split_inline("w1 w2") == ("w1 w2", None)
    _, _, d = build_tiny(SUNMASKModel, sunmask_tiny)
    a, b = d.index("a"), d.index("b")
    assert parse_template("a <gap> b <blank><blank>", d) == [a, GAP, b, BLANK, BLANK]
    # encode is applied to the text between markers only (e.g. a tokenizer that upper-cases nothing here)
    assert parse_template("<blank> a b", d, encode=lambda s: s.replace("b", "a")) == [BLANK, a, a]


@pytest.mark.parametrize("items, length, expected", [
    ([5, BLANK, BLANK, 6], 9, [5, BLANK, BLANK, 6]),          # no <gap>: the template's own width
    ([5, GAP, 6], 6, [5, BLANK, BLANK, BLANK, BLANK, 6]),     # gap = L - fixed = 4
    ([5, GAP, 6], 1, [5, BLANK, 6]),                          # at least one position per gap
    ([GAP, 5, GAP, BLANK], 7, [BLANK, BLANK, BLANK, 5, BLANK, BLANK, BLANK]),  # 5 split 3 + 2, blank stays
])
def test_width_rules(items, length, expected):
    tokens, fixed = resolve_template(items, length)
    assert tokens == expected and fixed == [t != BLANK for t in expected]


def test_batch_build_and_apply_with_end_padding():
    batch, lengths = TemplateBatch.build([[7, GAP, 8], None], torch.tensor([5, 3]))
    assert lengths.tolist() == [5, 3]  # row 0: 7 _ _ _ 8; row 1 keeps its predicted length
    END, PAD = 2, 1
    canvas = torch.tensor([[9, END, 9, 9, 9, 9, 9], [9, 9, 9, 9, PAD, PAD, PAD]])
    out, pinned, no_end = batch.apply(canvas, end=END, pad=PAD, free_symbols=torch.tensor([END, 11]),
                                      generator=torch.Generator().manual_seed(0))
    assert out[0].tolist() == [7, 11, 9, 9, 8, END, END]  # <eos> in a free position redrawn; tail pinned to <eos>
    assert pinned[0].tolist() == [True, False, False, False, True, True, True]
    assert no_end[0].tolist() == [False, True, True, True, False, False, False]
    assert torch.equal(out[1], canvas[1]) and not pinned[1].any() and not no_end[1].any()
    proposal = torch.full_like(out, END)
    kept = respect_template(proposal, out, pinned, no_end, END)
    assert torch.equal(kept[0], out[0])  # fixed kept; free positions refuse <eos>
    assert kept[1].tolist() == [END] * 7  # an untemplated row takes what it is given


class Scripted:
    """Wraps a real tiny SUNMASK model but scripts its logits: every position proposes ``token``."""

    def __init__(self, model, token):
        self.model, self.token = model, token

    def __getattr__(self, name):
        return getattr(self.model, name)

    def canvas_logits(self, tokens, encoder_out, length_d=None, mask=None):
        logits = torch.full(tokens.shape + (len(self.model.tgt_dict),), -10.0)
        logits[..., self.token] = 10.0
        return logits


@pytest.mark.parametrize("propose", ["eos", "word"])
def test_sunmask_fixed_tokens_survive_every_step_and_width_holds(propose):
    model, _, d = build_tiny(SUNMASKModel, sunmask_tiny)
    token = d.eos() if propose == "eos" else d.index("h")
    scripted = Scripted(model, token)
    a, b = d.index("a"), d.index("b")
    batch, lengths = TemplateBatch.build([[a, GAP, b, BLANK]] * 2, torch.tensor([6, 4]))
    strategy = SunmaskSample(DecodingOptions(temperature=1.0))
    enc = model.encode(torch.tensor([[a, d.eos()]] * 2), torch.tensor([2, 2]))
    g = torch.Generator().manual_seed(0)
    state = strategy.initialize(scripted, enc, lengths, generator=g, template=batch)
    T = 6
    for t in range(T):
        new = strategy.step(scripted, enc, state, t, T, generator=g)
        state.tokens, state.scores = new.tokens, new.scores  # the generator keeps the template masks
        # a at 0, b right after the gap, at every step
        assert state.tokens[:, 0].eq(a).all()
        assert state.tokens[0, 4] == b and state.tokens[1, 2] == b
    tokens, _, out_len, _ = strategy.finalize(scripted, enc, state)
    assert out_len.tolist() == [6, 4]  # gap widths 3 (L = 6) and 1 (L = 4), plus a, b and one blank
    assert tokens[0, :6].tolist()[0] == a and tokens[0, 4] == b
    if propose == "word":
        assert tokens[0, :6].tolist() == [a, token, token, token, b, token]


def test_generator_needs_a_strategy_that_takes_templates():
    from nat_plugins.decoding.dag_decoding import DAGLookahead

    _, _, d = build_tiny(SUNMASKModel, sunmask_tiny)
    gen = NATGenerator(d, DAGLookahead(DecodingOptions()))
    with pytest.raises(NATUserError, match="templates"):
        gen._templates(None, [[1]], torch.tensor([0]), 1, torch.tensor([3]))
