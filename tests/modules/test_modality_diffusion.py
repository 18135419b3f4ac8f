"""DiffGLAT's diffusion processes: modality targets (eq. 24), the gamma rule and its chain, mu, D3PM, time indexing."""
import pytest
import torch
from fairseq.data import Dictionary

from nat_plugins.modules.modality_diffusion import (
    DEFAULT_GAMMAS, choose_gamma, d3pm_corruption_rate, first_level_target, level_distribution, level_of_transition,
    modality_chain, modality_target, transition_of_level,
)
from nat_plugins.modules.noise import d3pm_corruption, vocabulary_symbols


def _random_case(B=64, T=7, V=6, seed=0, sharp=3.0):
    g = torch.Generator().manual_seed(seed)
    logprobs = torch.log_softmax(sharp * torch.randn(B, T, V, generator=g), -1)
    y0 = torch.randint(0, V, (B, T), generator=g)
    return logprobs, y0, g


def _literal_target(logprobs, y0, gamma):
    """argmax_w [gamma P(w) + (1 - gamma) P(w) 1(w = y0)], written out as the paper does."""
    P = logprobs.exp()
    onehot = torch.nn.functional.one_hot(y0, P.size(-1)).to(P)
    g = torch.as_tensor(gamma, dtype=P.dtype)
    g = g.view(-1, 1, 1) if g.dim() == 1 else g
    return (g * P + (1 - g) * P * onehot).argmax(-1)


@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.5, 0.3, 0.1, 0.01])
def test_closed_form_equals_the_literal_argmax_of_the_interpolation(gamma):
    logprobs, y0, _ = _random_case(seed=int(gamma * 100))
    assert torch.equal(modality_target(logprobs, y0, gamma), _literal_target(logprobs, y0, gamma))


def test_per_sentence_gamma_equals_the_literal_argmax():
    logprobs, y0, g = _random_case(seed=5)
    gamma = torch.tensor(DEFAULT_GAMMAS)[torch.randint(0, len(DEFAULT_GAMMAS), (y0.size(0),), generator=g)]
    assert torch.equal(modality_target(logprobs, y0, gamma), _literal_target(logprobs, y0, gamma))


def test_gamma_to_zero_gives_the_data_and_gamma_one_the_model_argmax():
    logprobs, y0, _ = _random_case(seed=1, sharp=8.0)  # sharp: y0 is rarely the argmax
    assert not torch.equal(logprobs.argmax(-1), y0)
    assert torch.equal(modality_target(logprobs, y0, 1e-30), y0)
    assert torch.equal(modality_target(logprobs, y0, 1.0), logprobs.argmax(-1))
    # in between it is a mix: y0 where P(y0) >= gamma max P
    mid = modality_target(logprobs, y0, 0.3)
    assert mid.eq(y0).sum() > logprobs.argmax(-1).eq(y0).sum()


def _brute_force_gamma(logprobs, y0, prev, real, gammas, keep):
    out = []
    for b in range(y0.size(0)):
        already = (real[b] & prev[b].eq(y0[b])).nonzero().squeeze(1).tolist()
        chosen = min(gammas)
        for gamma in sorted(gammas, reverse=True):
            target = modality_target(logprobs[b:b + 1], y0[b:b + 1], gamma)[0]
            kept = sum(int(target[i] == y0[b, i]) for i in already)
            if kept >= keep * len(already):
                chosen = gamma
                break
        out.append(chosen)
    return torch.tensor(out)


def test_gamma_is_the_largest_of_the_set_keeping_90_percent_of_already_correct_tokens():
    g = torch.Generator().manual_seed(2)
    y0 = torch.randint(0, 5, (200, 10), generator=g)
    # a model that leans towards y0, so that P(y0) / max P spreads over the gamma set
    leaning = 1.5 * torch.randn(200, 10, 5, generator=g) + 3.0 * torch.nn.functional.one_hot(y0, 5)
    logprobs = torch.log_softmax(leaning, -1)
    # previous output right on a random ~60% of positions, wrong (y0 + 1) elsewhere
    right = torch.rand(y0.shape, generator=g) < 0.6
    prev = torch.where(right, y0, (y0 + 1) % 5)
    real = torch.ones_like(y0, dtype=torch.bool)
    real[:50, 7:] = False  # shorter sentences: padding never counts
    prev[:10] = (y0[:10] + 1) % 5  # sentences with nothing already correct
    gamma = choose_gamma(logprobs, y0, prev, real)
    assert torch.allclose(gamma, _brute_force_gamma(logprobs, y0, prev, real, DEFAULT_GAMMAS, 0.9))
    assert torch.all(gamma[:10] == 1.0)  # vacuous: the largest gamma
    # the rule, checked directly: >= 90% of the already-correct tokens keep y0
    target = modality_target(logprobs, y0, gamma)
    already = real & prev.eq(y0)
    kept = (already & target.eq(y0)).sum(1).float()
    satisfiable = (already & _literal_target(logprobs, y0, min(DEFAULT_GAMMAS)).eq(y0)).sum(1) >= 0.9 * already.sum(1)
    assert torch.all(kept[satisfiable] >= 0.9 * already.sum(1)[satisfiable].float() - 1e-6)
    # where even the smallest gamma cannot keep 90%, the smallest is used
    assert torch.all(gamma[~satisfiable] == min(DEFAULT_GAMMAS))
    assert gamma.unique().numel() == len(DEFAULT_GAMMAS)  # the case exercises every value of the set
    assert 0 < int((~satisfiable).sum()) < 190


def test_gamma_choice_with_another_set_and_share():
    logprobs, y0, g = _random_case(B=100, T=8, V=4, seed=3, sharp=2.0)
    prev = torch.where(torch.rand(y0.shape, generator=g) < 0.5, y0, (y0 + 1) % 4)
    real = torch.ones_like(y0, dtype=torch.bool)
    gammas, keep = (0.25, 1.0, 0.5), 0.6
    assert torch.allclose(choose_gamma(logprobs, y0, prev, real, gammas, keep),
                          _brute_force_gamma(logprobs, y0, prev, real, gammas, keep))
    with pytest.raises(ValueError):
        choose_gamma(logprobs, y0, prev, real, (0.0, 0.5))


def test_time_indexing_maps_levels_to_transitions_once():
    T = 6
    assert [transition_of_level(t, T) for t in range(1, T + 1)] == [5, 4, 3, 2, 1, 0]
    assert all(level_of_transition(transition_of_level(t, T), T) == t for t in range(1, T + 1))
    for bad in (0, T + 1):
        with pytest.raises(ValueError):
            transition_of_level(bad, T)
    with pytest.raises(ValueError):
        level_of_transition(T, T)


def test_d3pm_rate_is_the_telescoped_beta_schedule():
    T = 6
    for t in range(1, T + 1):
        # beta_s = 1 / (T - s + 1); keep through levels 1..t-1 = prod (1 - beta_s)
        keep = 1.0
        for s in range(1, t):
            keep *= 1 - 1 / (T - s + 1)
        assert d3pm_corruption_rate(t, T) == pytest.approx(1 - keep)
        assert d3pm_corruption_rate(t, T) == pytest.approx((t - 1) / T)


@pytest.mark.parametrize("process", ["absorbing", "uniform"])
def test_d3pm_corruption_matches_its_rate(process):
    UNK, PAD = 3, 1
    symbols = torch.arange(4, 40)
    target = torch.randint(4, 40, (4000, 12), generator=torch.Generator().manual_seed(0))
    real = torch.ones_like(target, dtype=torch.bool)
    real[:, 9:] = False
    target = target.masked_fill(~real, PAD)
    before = target.clone()
    T = 6
    for t in (1, 3, 6):
        rate = d3pm_corruption_rate(t, T)
        noisy, corrupted = d3pm_corruption(target, real, rate, process, mask_idx=UNK, symbols=symbols,
                                           generator=torch.Generator().manual_seed(t))
        assert torch.equal(target, before)
        assert not (corrupted & ~real).any() and torch.equal(noisy[~real], target[~real])
        assert torch.equal(noisy[~corrupted], target[~corrupted])
        share = corrupted[real].float().mean().item()
        assert share == pytest.approx(rate, abs=0.01), (t, share)  # 36k positions: sd < 0.003
        if process == "absorbing":
            assert noisy[corrupted].eq(UNK).all()
        else:
            assert noisy[corrupted].ge(4).all() and noisy[corrupted].lt(40).all()
            if t > 1:  # redrawn uniformly: a few land on the original token (1/36), most change
                same = noisy[corrupted].eq(target[corrupted]).float().mean().item()
                assert same == pytest.approx(1 / 36, abs=0.01)
    with pytest.raises(ValueError):
        d3pm_corruption(target, real, 0.5, "gaussian")


def test_vocabulary_symbols_exclude_special_and_filler_symbols():
    d = Dictionary()
    for w in ("a", "b", "madeupword0000"):
        d.add_symbol(w)
    ids = vocabulary_symbols(d).tolist()
    assert ids == [d.index("a"), d.index("b")]


def _table(rows, V=6):
    """``[1, n, V]`` log-probabilities from per-position probability rows."""
    P = torch.tensor(rows, dtype=torch.float64)
    assert P.shape[1] == V and torch.allclose(P.sum(1), torch.ones(len(rows), dtype=torch.float64))
    return P.log().float()[None]


# y0 = 1 2 3 4; three transitions' distributions, as read at the alignments the chain asks for
HAND_Y0 = torch.tensor([[1, 2, 3, 4]])
HAND_P = [
    # transition 0 (P_{T-1}): argmax 1 5 3 0  ->  ~y_T = 1 5 3 0, right at positions 0 and 2
    _table([[.05, .60, .10, .10, .10, .05], [.10, .10, .10, .10, .10, .50],
            [.10, .10, .10, .50, .10, .10], [.50, .10, .10, .10, .10, .10]]),
    # transition 1 (P_{T-2}): P(y0) / max P = 1, .95, 2/3, 1/30 (argmax 1 5 0 0)
    _table([[.10, .50, .10, .10, .10, .10], [.04, .04, .38, .07, .07, .40],
            [.48, .05, .05, .32, .05, .05], [.60, .10, .10, .10, .02, .08]]),
    # transition 2 (P_{T-3}): P(y0) / max P = 1/3, 1, 7/9, .32 (argmax 5 2 0 0)
    _table([[.05, .20, .05, .05, .05, .60], [.10, .10, .50, .10, .10, .10],
            [.45, .05, .05, .35, .05, .05], [.50, .10, .05, .05, .16, .14]]),
]


def test_gamma_rule_on_a_hand_example_from_the_first_transition():
    real = torch.ones_like(HAND_Y0, dtype=torch.bool)
    reads = []

    def read(j, target):
        reads.append((j, target.tolist()))
        return HAND_P[j], torch.tensor([True])

    targets, gammas = modality_chain(read, HAND_Y0, real, steps=2)
    # eq. 13: each step is read at the previous target's alignment; the first at y0's
    assert reads == [(0, [[1, 2, 3, 4]]), (1, [[1, 5, 3, 0]]), (2, [[1, 2, 3, 0]])]
    # first transition (our rule): ~y_T = argmax P_{T-1}
    assert targets[0].tolist() == [[1, 5, 3, 0]]
    # gamma_{T-1} keeps 90% of y0 * ~y_T = positions 0, 2 (both): position 2 needs gamma <= 2/3,
    # so gamma = .6; then position 1 (.95 >= .6) becomes y0 and position 3 (1/30) stays argmax 0
    assert gammas[0].tolist() == [pytest.approx(0.6)] and targets[1].tolist() == [[1, 2, 3, 0]]
    # gamma_{T-2} keeps all 3 of positions 0, 1, 2: position 0 needs gamma <= 1/3, so gamma = .3;
    # position 3 (.32 >= .3) becomes y0 too
    assert gammas[1].tolist() == [pytest.approx(0.3)] and targets[2].tolist() == [[1, 2, 3, 4]]
    # against the canvas (the old first-transition reading) nothing is right, gamma = 1: the argmax
    canvas = torch.full_like(HAND_Y0, 3 + 100)
    assert choose_gamma(HAND_P[1], HAND_Y0, canvas, real).tolist() == [1.0]
    assert modality_target(HAND_P[1], HAND_Y0, 1.0).tolist() == [[1, 5, 0, 0]]


def test_first_level_target_and_chain_keep_y0_where_not_real_or_unusable():
    real = torch.tensor([[True, True, False, True]])
    assert first_level_target(HAND_P[0], HAND_Y0, real).tolist() == [[1, 5, 3, 0]]  # position 2: y0 (3)
    real = torch.tensor([[True, False, True, True]])
    assert first_level_target(HAND_P[0], HAND_Y0, real).tolist() == [[1, 2, 3, 0]]
    y0 = HAND_Y0.repeat(2, 1)
    P = [p.repeat(2, 1, 1) for p in HAND_P]
    usable = [torch.tensor([True, True]), torch.tensor([True, False]), torch.tensor([True, True])]
    targets, _ = modality_chain(lambda j, t: (P[j], usable[j]), y0, torch.ones_like(y0, dtype=torch.bool), 2)
    assert targets[1].tolist() == [[1, 2, 3, 0], [1, 2, 3, 4]]  # sentence 1 unusable at step 1: y0
    # step 2 for sentence 1 then keeps all of y0 (4 already right): position 0 needs gamma <= 1/3
    assert targets[2].tolist() == [[1, 2, 3, 4], [1, 2, 3, 4]]
    with pytest.raises(ValueError):
        modality_chain(lambda j, t: (P[j], usable[j]), y0, torch.ones_like(y0, dtype=torch.bool), 0)


def test_mu_is_one_over_T_for_every_level():
    for T in (1, 2, 6):
        assert level_distribution(T).tolist() == [1.0 / T] * T
    with pytest.raises(ValueError):
        level_distribution(0)
