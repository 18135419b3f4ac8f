"""sundae_loss: corruption (App. A.3), L(1:k) by hand (§2.1, App. J), stop-gradients."""
import math

import pytest
import torch

from nat_plugins.criterions.sundae_loss import SUNDAELoss
from nat_plugins.models.sundae import SUNDAEModel, sundae_tiny
from model_builders import ToyTask, build_tiny
from nat_plugins.modules.noise import uniform_corruption


def build(**overrides):
    return build_tiny(SUNDAEModel, sundae_tiny, **overrides)


def sample_of(d):
    a, b, c = d.index("a"), d.index("b"), d.index("c")
    eos, pad = d.eos(), d.pad()
    return {
        "net_input": {"src_tokens": torch.tensor([[a, b, eos], [pad, c, eos]]), "src_lengths": torch.tensor([3, 2])},
        "target": torch.tensor([[c, a, b, eos], [b, eos, pad, pad]]),
    }


# ---- corruption -----------------------------------------------------------------
def test_corruption_rate_is_uniform_per_sequence_and_noise_is_uniform_non_special():
    g = torch.Generator().manual_seed(0)
    B, L = 4000, 200
    clean = torch.full((B, L), 4, dtype=torch.long)
    symbols = torch.arange(5, 15)  # clean token 4 is not a noise symbol: every replacement is visible
    canvas = torch.ones(B, L, dtype=torch.bool)
    canvas[:, -20:] = False  # not part of the canvas: never corrupted
    noised, replaced, alpha = uniform_corruption(clean, canvas, symbols, generator=g)
    assert not replaced[:, -20:].any() and noised[:, -20:].eq(4).all()
    assert torch.equal(replaced, noised.ne(clean))
    # Per-sequence proportion ~ Bernoulli(alpha) mean with alpha ~ U(0, 1):
    # close to alpha, and uniformly distributed over [0, 1] (KS distance).
    rate = replaced[:, :-20].float().mean(1)
    assert (rate - alpha).abs().max() < 0.15
    sorted_rate, _ = rate.sort()
    ks = (sorted_rate - torch.arange(1, B + 1) / B).abs().max()
    assert ks < 0.03, ks
    assert abs(float(rate.mean()) - 0.5) < 0.02
    # Noise tokens are uniform over the allowed symbols.
    counts = torch.bincount(noised[replaced] - 5, minlength=10).float()
    assert counts.numel() == 10
    freq = counts / counts.sum()
    assert (freq - 0.1).abs().max() < 0.005


@pytest.mark.parametrize("rule", ["all", "ordinary"])
def test_training_corruption_draws_from_the_whole_vocabulary_but_pad_and_bos(monkeypatch, rule):
    """A.3 / App. J: eta ~ U({1..v}); <pad> and <bos> are never canvas symbols.
    ``ordinary`` is the earlier versions' vocabulary (no special symbols)."""
    import nat_plugins.criterions.sundae_loss as sundae_loss

    model, task, d = build(sundae_noise_symbols=rule)
    real, noise = sundae_loss.uniform_corruption, []

    def spy(clean, in_canvas, symbols, generator=None):
        out = real(clean, in_canvas, symbols, generator=generator)
        noise.append(out[0][out[1]])
        return out

    monkeypatch.setattr(sundae_loss, "uniform_corruption", spy)
    crit, g = SUNDAELoss(task, unroll_steps=1), torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(150):
            crit(model, sample_of(d), generator=g)
    counts = torch.bincount(torch.cat(noise), minlength=len(d))
    allowed = [i for i in range(len(d)) if i not in (d.pad(), d.bos())]
    if rule == "ordinary":
        allowed = list(range(d.nspecial, len(d)))
    assert counts.sum() > 300 and counts[allowed].min() > 0  # eos and unk included for "all"
    assert counts.sum() == counts[allowed].sum()


# ---- the loss by hand ------------------------------------------------------------
class _ConstModel(torch.nn.Module):
    """Tiny stand-in: constant-zero logits over V tokens and C length classes,
    so every term is known in closed form."""

    decoding_family = "sundae"
    pad = 1
    use_length = True

    def __init__(self, V=10, C=7, factor=0.5):
        super().__init__()
        self.V, self.C, self.length_loss_factor = V, C, factor
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.noise_symbols = torch.arange(4, V)

    def real_target_mask(self, t):
        return t.gt(3)

    def gold_canvas(self, t):
        in_canvas = t.ne(self.pad)
        return t.masked_fill(t.eq(2), 2), in_canvas, torch.tensor([1] * t.size(0))

    def encode(self, *a):
        return {}

    def source_lengths(self, s):
        return s.gt(3).sum(1)

    def length_loss(self, enc, src_len, length_d):
        logits = torch.zeros(len(length_d), self.C) * self.w
        return torch.nn.functional.cross_entropy(logits, length_d, reduction="sum")

    def canvas_logits(self, x, enc, length_d):
        return torch.zeros(*x.shape, self.V) * self.w

    def sample(self, logits, t, generator=None):
        return logits.argmax(-1)


def test_loss_equals_closed_form_on_a_constant_model():
    model = _ConstModel()
    crit = SUNDAELoss(ToyTask(None), label_smoothing=0.1, unroll_steps=2)
    sample = {"net_input": {"src_tokens": torch.tensor([[5, 6, 2]]), "src_lengths": torch.tensor([3])},
              "target": torch.tensor([[5, 7, 2, 1], [6, 2, 1, 1]])}
    loss, sample_size, log = crit(model, sample)
    # Uniform predictions: CE = log V per position for every step (smoothing
    # does not change a uniform distribution's loss); length CE = log C.
    expected = math.log(10) + 0.5 * math.log(7)
    assert sample_size == 1
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert float(log["l1"]) == pytest.approx(math.log(10), rel=1e-6)
    assert float(log["l2"]) == pytest.approx(math.log(10), rel=1e-6)
    assert float(log["length_loss"]) == pytest.approx(math.log(7), rel=1e-6)


def test_loss_matches_hand_computation_on_tiny_model(monkeypatch):
    model, task, d = build(sundae_canvas_slack=0.0)  # the slack's wider canvas: test_sundae_model.py
    sample = sample_of(d)
    a, b, c, e = (d.index(w) for w in "abce")
    eos, pad = d.eos(), d.pad()
    x0 = torch.tensor([[e, a, c, eos], [b, a, pad, pad]])
    x1 = torch.tensor([[c, c, b, eos], [e, eos, pad, pad]])
    monkeypatch.setattr("nat_plugins.criterions.sundae_loss.uniform_corruption",
                        lambda clean, in_canvas, symbols, generator=None: (x0, None, None))
    monkeypatch.setattr(model, "sample", lambda logits, temperature, generator=None: x1.clone())
    crit = SUNDAELoss(task, label_smoothing=0.1, unroll_steps=2)
    loss, _, log = crit(model, sample)

    src, src_len = sample["net_input"]["src_tokens"], sample["net_input"]["src_lengths"]
    enc = model.encode(src, src_len)
    length_d = torch.tensor([2, 1])  # ceil(3/2), ceil(1/2)
    gold = [[(0, c), (1, a), (2, b), (3, eos)], [(0, b), (1, eos)]]  # canvas widths 4 and 2

    def step_loss(x):
        lp = torch.log_softmax(model.canvas_logits(x, enc, length_d).float(), -1)
        terms = [0.9 * -lp[i, p, g] + 0.1 * -lp[i, p].mean() for i, row in enumerate(gold) for p, g in row]
        return sum(terms) / len(terms)

    l1, l2 = step_loss(x0), step_loss(x1)
    len_lp = torch.log_softmax(model.length_logits(enc, torch.tensor([2, 1])).float(), -1)
    length = -(len_lp[0, 2] + len_lp[1, 1]) / 2
    expected = (l1 + l2) / 2 + 1.0 * length  # sundae archs weight the length loss by 1
    assert torch.allclose(loss, expected, atol=1e-5)
    assert float(log["l1"]) == pytest.approx(float(l1), rel=1e-5)
    assert float(log["l2"]) == pytest.approx(float(l2), rel=1e-5)
    assert log["ntokens"] == 4


def test_single_step_is_l1_only(monkeypatch):
    model, task, d = build()
    calls = []
    monkeypatch.setattr(model, "sample", lambda *a, **k: calls.append(1))
    _, _, log = SUNDAELoss(task, unroll_steps=1)(model, sample_of(d), generator=torch.Generator().manual_seed(0))
    assert "l1" in log and "l2" not in log and not calls
    assert float(log["word_loss"]) == pytest.approx(float(log["l1"]))


# ---- stop-gradients ----------------------------------------------------------------
def test_no_gradient_flows_through_samples(monkeypatch):
    model, task, d = build()
    model.train()
    seen, inputs = [], []
    real_sample, real_logits = model.sample, model.canvas_logits

    def spy_sample(logits, temperature, generator=None):
        seen.append((logits.requires_grad, torch.is_grad_enabled()))
        return real_sample(logits, temperature, generator)

    def spy_logits(x, enc, length_d=None):
        inputs.append(x.clone())
        return real_logits(x, enc, length_d)

    monkeypatch.setattr(model, "sample", spy_sample)
    monkeypatch.setattr(model, "canvas_logits", spy_logits)
    sample = sample_of(d)
    torch.manual_seed(5)  # dropout is 0; the generator drives corruption and samples
    loss, _, log = SUNDAELoss(task, unroll_steps=3)(model, sample, generator=torch.Generator().manual_seed(1))
    assert seen == [(False, False), (False, False)]  # sampled under no_grad from detached logits
    assert set(log) >= {"l1", "l2", "l3"} and len(inputs) == 3
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    # Same gradient as the per-step losses with the sampled inputs held as constants.
    model.zero_grad()
    monkeypatch.setattr(model, "canvas_logits", real_logits)
    src, src_len = sample["net_input"]["src_tokens"], sample["net_input"]["src_lengths"]
    clean, in_canvas, length_d = model.gold_canvas(sample["target"])
    enc = model.encode(src, src_len)
    from nat_plugins.modules.losses import label_smoothed_nll

    steps = [label_smoothed_nll(real_logits(x, enc, length_d)[in_canvas], clean[in_canvas], 0.1)[0].mean()
             for x in inputs]
    manual = torch.stack(steps).mean() + model.length_loss(enc, model.source_lengths(src), length_d) / 2
    manual.backward()
    for n, p in model.named_parameters():
        if n in grads:
            assert torch.allclose(grads[n], p.grad, atol=1e-6), n


def test_no_gradient_into_encoder_from_the_length_loss(monkeypatch):
    model, task, d = build()
    model.train()
    # Zero word loss contribution: keep only the length term.
    crit = SUNDAELoss(task, unroll_steps=1)
    loss, _, log = crit(model, sample_of(d), generator=torch.Generator().manual_seed(0))
    model.zero_grad()
    (log["length_loss"] * 0 + model.length_loss(
        model.encode(sample_of(d)["net_input"]["src_tokens"], torch.tensor([3, 2])), torch.tensor([2, 1]),
        torch.tensor([2, 1]))).backward()
    for name, p in model.named_parameters():
        if name.startswith("encoder."):
            assert p.grad is None or p.grad.abs().sum() == 0, name
    assert model.length_predictor.out.weight.grad.abs().sum() > 0
    # ...while the word loss does train the encoder.
    model.zero_grad()
    loss.backward()
    assert model.encoder.embed_tokens.weight.grad.abs().sum() > 0


def test_criterion_refuses_other_models():
    from nat_plugins.errors import NATUserError

    class Other:
        decoding_family = "cmlm"

    with pytest.raises(NATUserError):
        SUNDAELoss(ToyTask(None))(Other(), {})
