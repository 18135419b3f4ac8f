"""SUNMASK sampling (§2.3): Coconet's annealed mask, accept ramp, typical sampling, fixed positions."""
import math

import pytest
import torch

from model_builders import build_tiny
from nat_plugins.decoding.strategy import CanvasState, DecodingOptions
from nat_plugins.decoding.sunmask_sampling import SunmaskSample, accept_probability, coconet_alpha, typical_filter
from nat_plugins.decoding.templates import BLANK, TemplateBatch
from nat_plugins.errors import NATUserError
from nat_plugins.models.sunmask import SUNMASKModel, sunmask_tiny


def test_coconet_schedule_by_hand():
    # alpha_n = max(.001, .999 - n / (0.75 * 8) * .998)
    assert math.isclose(coconet_alpha(0, 8), 0.999)
    assert math.isclose(coconet_alpha(3, 8), 0.999 - 0.5 * 0.998)
    assert math.isclose(coconet_alpha(6, 8), 0.001)
    assert coconet_alpha(7, 8) == 0.001
    values = [coconet_alpha(n, 100) for n in range(100)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_triangular_accept_ramp():
    assert [round(accept_probability(n, 5, 0.2, 1.0), 6) for n in range(5)] == [0.2, 0.6, 1.0, 0.6, 0.2]
    assert accept_probability(0, 1, 0.2, 0.9) == 0.9
    assert accept_probability(3, 7, 1.0, 1.0) == 1.0


def test_typical_filter_keeps_the_locally_typical_tokens_not_the_mode():
    p = torch.tensor([[0.5, 0.3, 0.2]])
    logits = p.log()
    # H = 1.0297; |-log p - H| = .337, .174, .580: the typical order is token 1, 0, 2
    assert torch.isinf(typical_filter(logits, 0.7)).tolist() == [[False, False, True]]
    assert torch.isinf(typical_filter(logits, 0.25)).tolist() == [[True, False, True]]
    assert torch.equal(typical_filter(logits, 1.0), logits)
    zero = torch.tensor([[0.0, float("-inf"), 0.0]])  # a forbidden symbol stays out
    assert torch.isinf(typical_filter(zero, 0.99))[0, 1]


def _model_and_state():
    model, _, d = build_tiny(SUNMASKModel, sunmask_tiny)
    enc = model.encode(torch.tensor([[d.index("a"), d.index("b"), d.eos()]] * 2), torch.tensor([3, 3]))
    strategy = SunmaskSample(DecodingOptions(temperature=1.0, extra={"sunmask_accept": "0.5:1"}))
    g = torch.Generator().manual_seed(0)
    template, lengths = TemplateBatch.build([[d.index("a"), BLANK, BLANK, d.index("b")]] * 2, torch.tensor([4, 4]))
    state = strategy.initialize(model, enc, lengths, generator=g, template=template)
    return model, enc, strategy, state, g


def test_fixed_positions_never_change_and_only_masked_positions_do():
    model, enc, strategy, state, g = _model_and_state()
    seen = []
    original = model.canvas_logits

    def spy(tokens, encoder_out, length_d=None, mask=None):
        seen.append(mask.clone())
        return original(tokens, encoder_out, length_d, mask)

    model.canvas_logits = spy
    start = state.tokens.clone()
    T = 8
    for t in range(T):
        before = state.tokens.clone()
        new = strategy.step(model, enc, state, t, T, generator=g)
        state.tokens, state.scores = new.tokens, new.scores  # as the generator's assign, which keeps "fixed"
        mask = seen[-1]
        assert mask[state.extra["fixed"]].all()  # fixed: always trusted (m = 1)
        assert torch.equal(state.tokens[mask], before[mask])  # trusted positions keep their token
    fixed = state.extra["fixed"]
    assert torch.equal(state.tokens[fixed], start[fixed])
    # Step 0 masks ~all free positions (alpha .999); the last steps almost none (alpha .001).
    free = ~seen[0] & start.ne(model.pad)
    assert free.sum() >= (~fixed & start.ne(model.pad)).sum() - 1
    assert seen[-1][start.ne(model.pad)].float().mean() > 0.9


def test_bad_options():
    with pytest.raises(NATUserError, match="sunmask-accept"):
        SunmaskSample(DecodingOptions(extra={"sunmask_accept": "0:2"}))
    with pytest.raises(NATUserError, match="typical"):
        SunmaskSample(DecodingOptions(extra={"sunmask_typical_mass": 1.5}))
