"""SUNDAE decoding strategies (§2.2, §3.1) on a small untrained model."""
import argparse

import pytest
import torch
from fairseq.data import Dictionary

from nat_plugins.decoding.generator import NATGenerator
from nat_plugins.decoding.strategy import STRATEGIES, DecodingOptions
from nat_plugins.decoding.sundae_sampling import SundaeArgmaxUnrolled, SundaeSample, least_certain, random_subset
from nat_plugins.models.sundae import SUNDAEModel, sundae_tiny


class _Task:
    def __init__(self, d):
        self.source_dictionary = self.target_dictionary = d


@pytest.fixture(scope="module")
def model_dict():
    d = Dictionary()
    for i in range(40):
        d.add_symbol(f"w{i}")
    args = argparse.Namespace(dropout=0.0)
    sundae_tiny(args)
    torch.manual_seed(0)
    model = SUNDAEModel.build_model(args, _Task(d)).eval()
    # Sharpen the untrained model a little so argmax chains actually move.
    with torch.no_grad():
        model.decoder.output_projection.weight.mul_(8.0)
    return model, d


def batch(d):
    eos, pad = d.eos(), d.pad()
    src = torch.tensor([[10, 11, 12, 13, eos], [pad, pad, 14, 15, eos], [pad, pad, pad, 16, eos]])
    return {"net_input": {"src_tokens": src, "src_lengths": torch.tensor([5, 3, 2])}}


def options(**kw):
    extra = kw.pop("extra", {})
    return DecodingOptions(**kw, extra=extra)


def run_state(model, strategy, lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.tensor([[10, 11, 12, 13, model.eos]]).expand(lengths.numel(), -1)
    enc = model.encode(src, torch.full((lengths.numel(),), 5))
    state = strategy.initialize(model, enc, lengths, generator=g)
    states = [state]
    for t in range(strategy.num_steps()):
        state = strategy.step(model, enc, state, t, strategy.num_steps(), generator=g)
        states.append(state)
    return enc, states


def test_strategies_are_registered_for_the_sundae_family():
    assert STRATEGIES["sundae_sample"].families == ("sundae",)
    assert STRATEGIES["sundae_argmax_unrolled"].families == ("sundae",)
    auto = next(s for s, c in STRATEGIES.items() if "sundae" in c.families and getattr(c, "default", True))
    assert auto == "sundae_sample"


@torch.no_grad()
def test_argmax_unrolled_with_rho_zero_is_plain_argmax(model_dict):
    model, d = model_dict
    lengths = torch.tensor([8, 6, 4])
    enc, states = run_state(model, SundaeArgmaxUnrolled(options(iterations=5, extra={"argmax_unrolled_rho": 0.0})), lengths)
    # Plain argmax chain from the same prior sample.
    y = states[0].tokens
    length_d = states[0].extra["length_d"]
    for t in range(5):
        y = model.restrict(model.canvas_logits(y, enc, length_d)).argmax(-1).masked_fill(y.eq(model.pad), model.pad)
        assert torch.equal(states[t + 1].tokens, y)
    # ...which is also low-temperature sampling at tau = 0.
    _, sampled = run_state(model, SundaeSample(options(iterations=5, temperature=0.0)), lengths)
    assert torch.equal(sampled[-1].tokens, states[-1].tokens)


@torch.no_grad()
def test_argmax_unrolled_replaces_least_certain_positions_by_unrolled_tokens(model_dict):
    model, d = model_dict
    lengths = torch.tensor([10, 10])
    rho = 0.5
    enc, states = run_state(model, SundaeArgmaxUnrolled(options(iterations=3, extra={"argmax_unrolled_rho": rho})), lengths)
    length_d = states[0].extra["length_d"]
    prev = states[1]  # step 2 (t = 1) uses lambda_1's certainties
    in_canvas = prev.tokens.ne(model.pad)
    lp = torch.log_softmax(model.restrict(model.canvas_logits(prev.tokens, enc, length_d)), -1)
    predicted = lp.argmax(-1)
    unrolled = model.restrict(model.canvas_logits(predicted, enc, length_d)).argmax(-1)
    uncertain = least_certain(prev.scores, in_canvas, rho)
    assert in_canvas.sum(1).tolist() == [13, 13]  # 10 + ceil(0.25 * 10) slack
    assert uncertain.sum(1).tolist() == [6, 6]  # floor(0.5 * 13)
    expected = torch.where(uncertain, unrolled, predicted)
    assert torch.equal(states[2].tokens, expected)
    assert torch.equal(states[2].scores, lp.gather(-1, expected.unsqueeze(-1)).squeeze(-1).masked_fill(~in_canvas, 0))


def test_least_certain_and_random_subset():
    conf = torch.tensor([[-0.1, -3.0, -2.0, -0.5, 0.0]])
    in_canvas = torch.tensor([[True, True, True, True, False]])
    assert least_certain(conf, in_canvas, 0.5).tolist() == [[False, True, True, False, False]]
    assert not least_certain(conf, in_canvas, 0.0).any()
    g = torch.Generator().manual_seed(0)
    big = torch.ones(200, 100, dtype=torch.bool)
    share = random_subset(big, 0.3, g).float().mean()
    assert abs(float(share) - 0.3) < 0.01


@torch.no_grad()
def test_update_proportion_changes_only_a_subset(model_dict, monkeypatch):
    model, d = model_dict
    lengths = torch.tensor([16] * 20)
    # Every proposal differs from the prior sample, so changes = the subset.
    monkeypatch.setattr(model, "pick_tokens", lambda logits, t, generator=None: (
        torch.full(logits.shape[:-1], 2), torch.zeros(logits.shape[:-1])))
    _, states = run_state(model, SundaeSample(options(iterations=1, temperature=1.0,
                                                      extra={"sundae_update_proportion": 0.25})), lengths)
    changed = states[1].tokens.ne(states[0].tokens).float().mean()
    assert abs(float(changed) - 0.25) < 0.05


@torch.no_grad()
def test_initial_canvas_is_uniform_over_the_vocabulary_but_pad_and_bos(model_dict):
    model, d = model_dict
    strategy = SundaeSample(options())
    state = strategy.initialize(model, None, torch.tensor([32] * 300), generator=torch.Generator().manual_seed(0))
    toks = state.tokens[state.tokens.ne(d.pad())]
    assert toks.ne(d.bos()).all()
    allowed = [i for i in range(len(d)) if i not in (d.pad(), d.bos())]
    counts = torch.bincount(toks, minlength=len(d))[allowed].float()
    assert counts.min() > 0 and (counts.max() - counts.min()) / counts.mean() < 0.35


@torch.no_grad()
def test_seed_makes_sampling_reproducible(model_dict):
    model, d = model_dict

    def decode(seed):
        gen = NATGenerator(d, SundaeSample(options(iterations=4, temperature=0.7, samples=3, length_beam=2, seed=seed)))
        return [h[0]["tokens"].tolist() for h in gen.generate([model], batch(d))]

    assert decode(7) == decode(7)
    assert decode(7) != decode(8)


@torch.no_grad()
def test_reranking_picks_the_candidate_with_the_best_model_score(model_dict):
    model, d = model_dict
    gen = NATGenerator(d, SundaeSample(options(iterations=3, temperature=1.0, samples=6, length_beam=2, seed=3)))
    out = gen.generate([model], batch(d))
    src = batch(d)["net_input"]["src_tokens"]
    for i, hypos in enumerate(out[:2]):
        assert len(hypos) == 12
        scores = [float(h["score"]) for h in hypos]
        assert scores == sorted(scores, reverse=True)
        assert len(set(tuple(h["tokens"].tolist()) for h in hypos)) > 1
    # Direct check of finalize: the score is the model score of the cleaned canvas.
    strategy = SundaeSample(options(iterations=2, temperature=1.0))
    enc = model.encode(src[:1].expand(4, -1), torch.full((4,), 5))
    g = torch.Generator().manual_seed(0)
    state = strategy.initialize(model, enc, torch.tensor([6, 6, 6, 6]), generator=g)
    state = strategy.step(model, enc, state, 0, 2, generator=g)
    tokens, pos, lengths, score = strategy.finalize(model, enc, state)
    _, expected = model.model_score(tokens, enc, state.extra["length_d"])
    assert torch.allclose(score, expected)
    best = int(score.argmax())
    score_view = score.view(1, 4)
    assert int(score_view.argsort(1, descending=True)[0, 0]) == best


@torch.no_grad()
def test_early_stop_freezes_converged_rows(model_dict):
    model, d = model_dict
    strategy = SundaeArgmaxUnrolled(options(iterations=12, early_stop=True, extra={"argmax_unrolled_rho": 0.0}))
    gen = NATGenerator(d, strategy)
    out = gen.generate([model], batch(d))
    steps = [h[0]["steps"] for h in out]
    assert min(steps) < 12  # argmax chains reach a fixed point
    # Sampling honours early stop too (a fixed point of the chain), unlike
    # the generator's default for stochastic strategies.
    assert SundaeSample(options(temperature=0.5, early_stop=True)).stochastic is False
    assert SundaeSample(options(temperature=0.5)).stochastic is True


@torch.no_grad()
def test_history_and_output_is_the_canvas_without_its_end_positions(model_dict):
    model, d = model_dict
    gen = NATGenerator(d, SundaeSample(options(iterations=3, temperature=0.5, seed=0)), retain_history=True)
    out = gen.generate([model], batch(d))
    for hypos in out:
        h = hypos[0]
        toks = h["tokens"].tolist()
        assert toks[-1] == d.eos() and d.eos() not in toks[:-1] and d.pad() not in toks
        assert len(h["history"]) == 4  # prior + 3 steps
        assert torch.equal(h["history"][-1]["tokens"], h["tokens"])  # each step shown as read out
    # The final canvas of every candidate, read out by hand: its non-<eos> tokens in order.
    strategy = SundaeSample(options(iterations=3, temperature=2.0))
    enc, states = run_state(model, strategy, torch.tensor([12, 12, 12, 12]), seed=4)
    state = states[-1]
    state.tokens[:, [0, 3, 4]] = model.eos  # end padding at the start and in the middle
    state.tokens[1, 10:] = model.eos
    final = state.tokens
    tokens, _, lengths, _ = strategy.finalize(model, enc, state)
    assert lengths.tolist() == [12, 7, 12, 12]
    shown, shown_lengths = strategy.history_entry(model, state)  # --retain-iter-history
    assert torch.equal(shown, tokens) and torch.equal(shown_lengths, lengths)
    for row, toks, n in zip(final.tolist(), tokens.tolist(), lengths.tolist()):
        kept = [t for t in row if t not in (model.eos, model.pad)]
        assert toks[:n] == kept and all(t == model.eos for t in toks[n:len(row)])


def test_bad_options_are_user_errors():
    from nat_plugins.errors import NATUserError

    with pytest.raises(NATUserError):
        SundaeSample(options(extra={"sundae_update_proportion": 0.0}))
    with pytest.raises(NATUserError):
        SundaeArgmaxUnrolled(options(extra={"argmax_unrolled_rho": 1.5}))


# ---- issue #20: the strategies without a [N, W, V] log-softmax -----------------------
class _WholeTensorSample(SundaeSample):
    """``sundae_sample`` as it was before issue #20 (the oracle): full log-softmax."""

    def _propose(self, model, encoder_out, state, step, generator):
        logits = model.canvas_logits(state.tokens, encoder_out, state.extra["length_d"])
        restricted = model.restrict(logits)
        if self.temperature <= 0:
            tokens = restricted.argmax(-1)
        else:
            cdf = torch.softmax(restricted / self.temperature, dim=-1).cumsum(-1)
            u = (1.0 - torch.rand(cdf.shape[:-1] + (1,), generator=generator)) * cdf[..., -1:]
            tokens = torch.searchsorted(cdf, u).squeeze(-1).clamp(max=cdf.size(-1) - 1)
        logp = torch.log_softmax(restricted, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        return tokens.masked_fill(state.tokens.eq(model.pad), model.pad), logp, {}

    def finalize(self, model, encoder_out, state):
        return _whole_tensor_finalize(model, encoder_out, state)


class _WholeTensorArgmaxUnrolled(SundaeArgmaxUnrolled):
    """``sundae_argmax_unrolled`` as it was before issue #20 (the oracle)."""

    def _propose(self, model, encoder_out, state, step, generator):
        length_d = state.extra["length_d"]
        in_canvas = state.tokens.ne(model.pad)
        logp_all = torch.log_softmax(model.restrict(model.canvas_logits(state.tokens, encoder_out, length_d)), -1)
        logp, predicted = logp_all.max(-1)
        predicted = predicted.masked_fill(~in_canvas, model.pad)
        tokens = predicted
        if step > 0 and self.rho > 0:
            uncertain = least_certain(state.scores, in_canvas, self.rho)
            if uncertain.any():
                unrolled_logp = torch.log_softmax(model.restrict(model.canvas_logits(predicted, encoder_out, length_d)), -1)
                tokens = torch.where(uncertain, unrolled_logp.argmax(-1), predicted)
        logp = logp_all.gather(-1, tokens.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return tokens, logp, {}

    def finalize(self, model, encoder_out, state):
        return _whole_tensor_finalize(model, encoder_out, state)


def _whole_tensor_finalize(model, encoder_out, state):
    lengths, cleaned = model.read_out(state.tokens)
    logp = torch.log_softmax(model.restrict(model.canvas_logits(cleaned, encoder_out, state.extra["length_d"])), -1)
    pos = logp.gather(-1, cleaned.unsqueeze(-1)).squeeze(-1)
    in_canvas = cleaned.ne(model.pad)
    pos = pos.masked_fill(~in_canvas, 0.0)
    return cleaned, pos, lengths, pos.sum(1) / in_canvas.sum(1).clamp(min=1)


@pytest.mark.parametrize("chunk", [1 << 20, 100])
@pytest.mark.parametrize("name,extra", [
    ("sample", {}), ("sample", {"sundae_update_proportion": 0.5}), ("argmax", {"argmax_unrolled_rho": 0.4}),
])
@torch.no_grad()
def test_strategies_match_the_whole_tensor_computation(model_dict, monkeypatch, chunk, name, extra):
    import nat_plugins.models.sundae as sundae

    monkeypatch.setattr(sundae, "_CHUNK_ELEMENTS", chunk)  # 100: two positions per chunk
    model, d = model_dict
    new_cls, old_cls = ((SundaeSample, _WholeTensorSample) if name == "sample"
                        else (SundaeArgmaxUnrolled, _WholeTensorArgmaxUnrolled))

    def decode(cls):
        opts = options(iterations=4, temperature=0.7, samples=3, length_beam=2, seed=11, extra=dict(extra))
        return NATGenerator(d, cls(opts), retain_history=True).generate([model], batch(d))

    new, old = decode(new_cls), decode(old_cls)
    for hyps_new, hyps_old in zip(new, old):
        assert len(hyps_new) == len(hyps_old) == 6
        for a, b in zip(hyps_new, hyps_old):
            assert torch.equal(a["tokens"], b["tokens"])
            assert [torch.equal(x["tokens"], y["tokens"]) for x, y in zip(a["history"], b["history"])] == [True] * 5
            assert torch.equal(a["positional_scores"], b["positional_scores"])  # bit-identical
            assert torch.equal(a["score"], b["score"])
