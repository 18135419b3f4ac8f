"""Templates with Mask-Predict and SUNDAE on hand-scripted models: fixed tokens survive every step, widths hold."""
import pytest
import torch

from model_builders import build_tiny
from nat_plugins.decoding.mask_predict import MaskPredict
from nat_plugins.decoding.strategy import DecodingOptions
from nat_plugins.decoding.sundae_sampling import SundaeArgmaxUnrolled, SundaeSample
from nat_plugins.decoding.templates import BLANK, GAP, TemplateBatch
from nat_plugins.models.cmlm import CMLMModel, cmlm_tiny
from nat_plugins.models.sundae import SUNDAEModel, sundae_tiny


class ScriptedCMLM:
    """A tiny CMLM whose every prediction is ``token``, with random confidences (so re-masking varies)."""

    decoder = None  # Mask-Predict then reads refine_logprobs

    def __init__(self, model, token):
        self.model, self.token = model, token
        self.g = torch.Generator().manual_seed(0)

    def __getattr__(self, name):
        return getattr(self.model, name)

    def refine_logprobs(self, tokens, encoder_out):
        V = len(self.model.tgt_dict)
        logits = torch.full(tokens.shape + (V,), -20.0)
        logits[..., self.token] = torch.rand(tokens.shape, generator=self.g) * 5
        return logits.log_softmax(-1)


def test_mask_predict_never_masks_fixed_tokens():
    model, _, d = build_tiny(CMLMModel, cmlm_tiny)
    a, b, h = d.index("a"), d.index("b"), d.index("h")
    scripted = ScriptedCMLM(model, h)
    batch, lengths = TemplateBatch.build([[a, BLANK, BLANK, b, GAP], None], torch.tensor([7, 3]))
    assert lengths.tolist() == [7, 3]  # row 0: a _ _ b + a gap of 7 - 4 = 3
    strategy = MaskPredict(DecodingOptions(iterations=5))
    state = strategy.initialize(scripted, None, lengths, template=batch)
    T = 5
    for t in range(T):
        state_tokens = state.tokens
        assert state_tokens[0, 0] == a and state_tokens[0, 3] == b  # never masked, never replaced
        new = strategy.step(scripted, None, state, t, T)
        state.tokens, state.scores = new.tokens, new.scores
        state.extra.update(new.extra)
        if t + 1 < T:  # the re-masked count follows the free positions: floor(5 * (T - t - 1) / T)
            assert int(new.tokens[0].eq(model.mask_idx).sum()) == 5 * (T - t - 1) // T
    tokens, _, out_len, _ = strategy.finalize(scripted, None, state)
    assert tokens[0, :7].tolist() == [a, h, h, b, h, h, h] and out_len.tolist() == [7, 3]
    assert tokens[1, :3].tolist() == [h, h, h]


class ScriptedSUNDAE:
    def __init__(self, model, token):
        self.model, self.token = model, token

    def __getattr__(self, name):
        return getattr(self.model, name)

    def canvas_logits(self, tokens, encoder_out, length_d=None):
        logits = torch.full(tokens.shape + (len(self.model.tgt_dict),), -10.0)
        logits[..., self.token] = 10.0
        return logits


@pytest.mark.parametrize("cls", [SundaeSample, SundaeArgmaxUnrolled])
@pytest.mark.parametrize("propose", ["eos", "word"])
def test_sundae_keeps_fixed_tokens_at_every_step_and_the_width(cls, propose):
    model, _, d = build_tiny(SUNDAEModel, sundae_tiny)
    a, b = d.index("a"), d.index("b")
    token = d.eos() if propose == "eos" else d.index("h")
    scripted = ScriptedSUNDAE(model, token)
    batch, lengths = TemplateBatch.build([[a, GAP, b, BLANK]], torch.tensor([6]))
    strategy = cls(DecodingOptions(temperature=0.5, extra={"argmax_unrolled_rho": 0.5}))
    enc = model.encode(torch.tensor([[a, d.eos()]]), torch.tensor([2]))
    g = torch.Generator().manual_seed(0)
    state = strategy.initialize(scripted, enc, lengths, generator=g, template=batch)
    T = 4
    for t in range(T):
        new = strategy.step(scripted, enc, state, t, T, generator=g)
        state.tokens, state.scores = new.tokens, new.scores
        assert state.tokens[0, 0] == a and state.tokens[0, 4] == b  # §2.2: fixed tokens kept at every step
        assert not state.tokens[0, :6].eq(model.end).any()  # free template positions never end the text
    tokens, _, out_len, _ = strategy.finalize(scripted, enc, state)
    assert out_len.tolist() == [6]  # a, a gap of 3, b, one blank
    if propose == "word":
        assert tokens[0, :6].tolist() == [a, token, token, token, b, token]
