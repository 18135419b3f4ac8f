"""diffglat_loss: value, which transition learns, dropout reuse, residual glancing, targets, warm-up, logging."""
import os
import sys

import pytest
import torch
from fairseq import metrics

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models"))

from test_dat_loss import PAIRS, make_sample  # noqa: E402
from test_diffglat import build_diffglat  # noqa: E402

from nat_plugins.criterions import dag_loss as dag_loss_mod  # noqa: E402
from nat_plugins.criterions import diffglat_loss as loss_mod  # noqa: E402
from nat_plugins.criterions.diffglat_loss import DiffGLATLoss, free_glanced, vertex_of_position  # noqa: E402
from nat_plugins.decoding.strategy import DecodingOptions  # noqa: E402
from nat_plugins.errors import NATUserError  # noqa: E402
from nat_plugins.ops import dag_log_likelihood  # noqa: E402


class _Task:
    def __init__(self, d):
        self.source_dictionary = self.target_dictionary = d


def criterion(d, level=None, **kwargs):
    kwargs.setdefault("glance_alpha", "0")
    kwargs.setdefault("diffusion_warmup_updates", 0)
    crit = DiffGLATLoss(_Task(d), **kwargs)
    if level is not None:
        crit.sample_level = lambda T: level
    return crit


def record_targets(monkeypatch):
    """Record the target of every ``target_match`` call of the criterion (a list, in call order)."""
    targets = []
    real_match = loss_mod.target_match

    def spy(logits, target):
        targets.append(target.clone())
        return real_match(logits, target)

    monkeypatch.setattr(loss_mod, "target_match", spy)
    return targets


def spy_transitions(monkeypatch, model):
    """Record (k, input, output, grad enabled) of every transition."""
    calls = []
    real = model.transition

    def spy(states, encoder_out, padding_mask, k):
        out = real(states, encoder_out, padding_mask, k)
        calls.append((k, states.detach().clone(), out.detach().clone(), torch.is_grad_enabled()))
        return out

    monkeypatch.setattr(model, "transition", spy)
    return calls


def test_validation_loss_is_the_final_graph_nll_per_token():
    model, d = build_diffglat(upsample_scale="3")
    sample = make_sample(d, PAIRS)
    model.eval()
    loss, sample_size, log = criterion(d)(model, sample)
    assert sample_size == 1 and log["level"] == 1 and log["skipped"] == log["nonfinite"] == 0
    assert "loss_t5" in log  # T = 3 passes x 2 groups; the last transition predicts y0
    # by hand: the decoding graph after the trained 3 passes, -log P(y|x) / |y| averaged
    model.prepare_for_decoding(DecodingOptions(iterations=None))
    src = sample["net_input"]["src_tokens"]
    P = model.graph_lengths(src, 3.0)
    enc = model.encode(src, sample["net_input"]["src_lengths"])
    lp, links = model.dag_graph(enc, P)
    expected = []
    for b, (_, t) in enumerate(PAIRS):
        ids = [d.index(w) for w in t.split()]
        ll = dag_log_likelihood(lp[b:b + 1, :, ids].transpose(1, 2), links[b:b + 1], P[b:b + 1],
                                torch.tensor([len(ids)]), impl="torch")
        expected.append(-ll / len(ids))
    assert loss.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("level,trained_layer", [(1, 1), (2, 0)])
def test_the_sampled_transition_and_by_default_the_ones_before_it_learn(level, trained_layer, detach):
    # one pass of 2 one-layer groups: transition k = T - t uses layer k alone
    model, d = build_diffglat(upsample_scale="3", diffusion_iterations=1)
    model.train()
    loss, _, log = criterion(d, level=level, diffusion_detach_inputs=detach)(model, make_sample(d, PAIRS))
    assert log["level"] == level and f"loss_t{trained_layer}" in log
    loss.backward()
    for name, p in (("token output", model.decoder.output_projection.weight), ("link query", model.links.query.weight),
                    ("link gate", model.links.gate.weight), ("link positions", model.links.link_positions.weight),
                    ("encoder", model.encoder.layers[0].fc1.weight)):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    layers = model.decoder.layers
    assert layers[trained_layer].fc1.weight.grad.abs().sum() > 0
    later = layers[1].fc1.weight.grad if trained_layer == 0 else None
    assert later is None or later.abs().sum() == 0  # transitions after k never get a gradient
    if trained_layer == 1:  # transition 0 computed the input H_t of transition 1
        earlier = layers[0].fc1.weight.grad
        if detach:
            assert earlier is None or earlier.abs().sum() == 0
        else:
            assert earlier is not None and earlier.abs().sum() > 0


def test_the_gradient_pass_reuses_the_no_grad_input_and_dropout(monkeypatch):
    model, d = build_diffglat(upsample_scale="3", dropout=0.3)
    model.train()
    calls = spy_transitions(monkeypatch, model)
    # alpha tiny: S rounds to 0, so the gradient pass sees exactly the no-grad input
    criterion(d, level=3, glance_alpha="1e-6", diffusion_process="absorbing")(model, make_sample(d, PAIRS))
    ks = [c[0] for c in calls]
    assert ks == [0, 1, 2, 3, 3]  # T = 6, t = 3: k = 3; no-grad 0..2, forked no-grad 3, gradient pass 3
    assert [c[3] for c in calls] == [True, True, True, False, True]  # H_t keeps its graph by default
    assert torch.equal(calls[2][2], calls[3][1])  # H_t is transition k-1's output
    assert torch.equal(calls[3][1], calls[4][1]) and torch.equal(calls[3][2], calls[4][2])  # same dropout masks


def test_residual_glancing_feeds_target_embeddings_only_where_the_previous_output_is_wrong(monkeypatch):
    model, d = build_diffglat(upsample_scale="3")
    model.train()
    calls = spy_transitions(monkeypatch, model)
    crit = criterion(d, level=2, glance_alpha="1.0", diffusion_process="uniform")
    chosen = {}
    real_select = crit.sampler.select

    def select(alignment, correct, ratio, generator=None, captured=None):
        out = real_select(alignment, correct, ratio, generator=generator, captured=captured)
        chosen.update(alignment=alignment, correct=correct, captured=captured, glanced=out)
        return out

    crit.sampler.select = select
    targets = []
    real_match = loss_mod.target_match

    def spy_match(logits, target):
        targets.append(target)
        return real_match(logits, target)

    monkeypatch.setattr(loss_mod, "target_match", spy_match)
    _, _, log = crit(model, make_sample(d, PAIRS))
    glanced, captured, alignment = chosen["glanced"], chosen["captured"], chosen["alignment"]
    assert log["glanced"] == int(glanced.sum()) > 0
    assert not (glanced & captured).any() and not (glanced & alignment.lt(0)).any()
    # alpha = 1: every aligned vertex that is wrong now and was wrong before is glanced
    aligned = alignment.ge(0)
    S = (aligned & ~chosen["correct"]).sum(1)
    assert glanced.sum(1).tolist() == torch.minimum(S, (aligned & ~captured).sum(1)).tolist()
    # ^y_t of transition k = 4 is transition 3's argmax; captured = it equals the aligned ~y_{t-1} token
    y_tilde = targets[-1]
    aligned_tok = y_tilde.gather(1, alignment.clamp(min=0))
    prev = model.token_logits(calls[3][2]).argmax(-1)
    assert torch.equal(captured & aligned, prev.eq(aligned_tok) & aligned)
    # the gradient pass input: H_t, with the glanced vertices' states replaced by their token embeddings
    assert [c[0] for c in calls] == [0, 1, 2, 3, 4, 4]
    k_in, grad_in = calls[4][1], calls[-1][1]
    assert torch.equal(grad_in[~glanced], k_in[~glanced])
    embedded, _ = model.decoder.embed(torch.where(glanced, aligned_tok, model.unk))
    assert torch.allclose(grad_in[glanced], embedded[glanced])


def test_glanced_vertices_emit_their_token_for_free():
    target = torch.tensor([[5, 6, 5]])
    match = torch.full((1, 3, 4), -2.0)
    alignment = torch.tensor([[0, -1, 1, 2]])
    glanced = torch.tensor([[False, False, True, True]])  # vertex 2 fed 6, vertex 3 fed 5
    out = free_glanced(match, target, alignment, glanced)
    assert torch.equal(out[0, :, :2], match[0, :, :2])
    assert out[0, :, 2].tolist() == [float("-inf"), 0.0, float("-inf")]
    assert out[0, :, 3].tolist() == [0.0, float("-inf"), 0.0]


def test_glanced_emissions_are_scored_by_default_and_free_on_request(monkeypatch):
    model, d = build_diffglat(upsample_scale="3")
    model.train()
    sample = make_sample(d, PAIRS)
    seen = {}
    for mode in ("all", "remaining"):
        crit = criterion(d, level=2, glance_alpha="1.0", diffusion_process="absorbing", glance_loss_on=mode)
        real = crit.glanced_emission

        def spy(match, target, alignment, glanced, real=real, mode=mode):
            out = real(match, target, alignment, glanced)
            seen[mode] = (match.clone(), out, glanced.clone(), alignment.clone(), target.clone())
            return out

        crit.glanced_emission = spy
        torch.manual_seed(3)
        crit(model, sample)
    for mode in ("all", "remaining"):
        match, out, glanced, alignment, target = seen[mode]
        assert glanced.any()
        b, j = glanced.nonzero()[0].tolist()
        fed = int(alignment[b, j])
        same = target[b].eq(target[b, fed])
        # the fed token alone may be emitted at a glanced vertex, in both modes
        assert torch.isinf(out[b, ~same, j]).all()
        expected = match[b, same, j] if mode == "all" else torch.zeros_like(match[b, same, j])
        assert torch.equal(out[b, same, j], expected)
    assert torch.equal(seen["all"][0], seen["remaining"][0])  # same step, same scores before the glance rule
    with pytest.raises(NATUserError):
        DiffGLATLoss(_Task(d), glance_loss_on="some")


def test_vertex_of_position_inverts_an_alignment():
    alignment = torch.tensor([[0, -1, 1, 2, -1], [0, 1, -1, -1, -1], [-1, -1, -1, -1, -1]])
    assert vertex_of_position(alignment, 3).tolist() == [[0, 2, 3], [0, 1, 0], [0, 0, 0]]


def test_modality_targets_after_warm_up_and_data_targets_before(monkeypatch):
    model, d = build_diffglat(upsample_scale="3")
    model.train()
    crit = criterion(d, level=3, diffusion_warmup_updates=10)
    seen = []
    real_step = crit.modality_targets

    def step(*args):
        out = real_step(*args)
        seen.append(out)
        return out

    monkeypatch.setattr(crit, "modality_targets", step)
    matches = record_targets(monkeypatch)
    sample = make_sample(d, PAIRS)
    y0 = sample["target"][:, :4].masked_fill(sample["target"][:, :4].eq(d.eos()), d.pad())
    model.set_num_updates(9)
    _, _, log = crit(model, sample)
    assert not seen and log["gamma_n"] == 0 and torch.equal(matches[-1], y0)
    model.set_num_updates(10)
    _, _, log = crit(model, sample)
    assert len(seen) == 1 and log["gamma_n"] == 3
    y_tilde, gamma, share = seen[0]
    assert torch.equal(matches[-1], y_tilde)  # the loss is on ~y_{t-1}, length |y|
    real = y0.ne(d.pad())
    assert torch.allclose(share, (y_tilde.eq(y0) & real).sum(1).float() / real.sum(1).float())
    assert torch.equal(y_tilde.eq(d.pad()), y0.eq(d.pad()))
    assert not y_tilde.eq(d.eos()).any() and not y_tilde.eq(d.bos()).any()
    assert all(g in crit.gammas for g in gamma.tolist())
    # the last transition always learns the data
    crit.sample_level = lambda T: 1
    matches.clear()
    crit(model, sample)
    assert torch.equal(matches[-1], y0)


def test_the_modality_anchor_adds_a_weighted_data_loss_at_intermediate_levels(monkeypatch):
    model, d = build_diffglat(upsample_scale="3")
    model.train()
    sample = make_sample(d, PAIRS)
    y0 = sample["target"][:, :4].masked_fill(sample["target"][:, :4].eq(d.eos()), d.pad())
    calls = []
    real_nll = loss_mod.mean_finite_nll

    def spy_nll(match, *args):
        out = real_nll(match, *args)
        calls.append(out[0].detach())
        return out

    monkeypatch.setattr(loss_mod, "mean_finite_nll", spy_nll)
    targets = record_targets(monkeypatch)
    for level, process, warmup, applies in ((2, "modality", 0, True), (1, "modality", 0, False),
                                            (2, "modality", 5, False), (2, "absorbing", 0, False)):
        calls.clear()
        targets.clear()
        crit = criterion(d, level=level, diffusion_process=process, diffusion_warmup_updates=warmup,
                         modality_anchor=0.5)
        torch.manual_seed(0)
        loss, _, _ = crit(model, sample)
        if applies:
            assert len(calls) == 2 and torch.equal(targets[-1], y0)
            assert not torch.equal(targets[-2], y0)  # eq. 24 target: the untrained model's argmax differs
            assert float(loss.detach()) == pytest.approx(float(calls[0] + 0.5 * calls[1]), rel=1e-6)
        else:
            assert len(calls) == 1 and float(loss.detach()) == pytest.approx(float(calls[0]))
    with pytest.raises(NATUserError):
        DiffGLATLoss(_Task(d), modality_anchor=-1)


@pytest.mark.parametrize("process", ["modality", "absorbing", "uniform"])
def test_framed_targets_keep_their_frame_at_every_level(monkeypatch, process):
    model, d = build_diffglat(upsample_scale="4", dag_frame_target=True)
    model.train()
    targets = record_targets(monkeypatch)
    sample = make_sample(d, PAIRS)
    lengths = torch.tensor([len(t.split()) for _, t in PAIRS])
    crit = criterion(d, level=model.num_transitions(), diffusion_process=process, glance_alpha="0.5")
    torch.manual_seed(0)
    _, _, log = crit(model, sample)
    assert log["skipped"] == 0 and targets
    for target in targets:  # the next graph's alignment (modality), glancing, the loss
        assert target[:, 0].eq(d.bos()).all()
        assert target.gather(1, (lengths + 1)[:, None]).eq(d.eos()).all()
        inner = target[:, 1:].clone()
        inner.scatter_(1, lengths[:, None], d.pad())
        assert not inner.eq(d.bos()).any() and not inner.eq(d.eos()).any()


def test_d3pm_targets_corrupt_at_rate_level_minus_one_over_T(monkeypatch):
    model, d = build_diffglat(upsample_scale="3")
    model.train()
    seen = []
    real = loss_mod.d3pm_corruption

    def spy(tokens, real_mask, rate, process, **kwargs):
        seen.append((rate, process))
        return real(tokens, real_mask, rate, process, **kwargs)

    monkeypatch.setattr(loss_mod, "d3pm_corruption", spy)
    for level in (2, 6):
        criterion(d, level=level, diffusion_process="absorbing")(model, make_sample(d, PAIRS))
    assert seen == [(1 / 6, "absorbing"), (5 / 6, "absorbing")]


def test_too_small_graphs_are_skipped_and_non_finite_sentences_counted(monkeypatch):
    model, d = build_diffglat(upsample_scale="2")
    model.train()
    crit = criterion(d, level=2, glance_alpha="0.5")
    loss, _, log = crit(model, make_sample(d, [("a b c", "d e f"), ("h", "e f g")]))
    assert log["skipped"] == 1 and torch.isfinite(loss)
    loss.backward()
    loss, _, log = crit(model, make_sample(d, [("h", "e f g")]))
    assert log["skipped"] == 1 and loss.item() == 0.0
    loss.backward()

    def first_is_inf(match, links, P, T, impl="auto"):
        ll = dag_log_likelihood(match, links, P, T, impl=impl)
        return torch.where(torch.arange(ll.numel()) == 0, torch.full_like(ll, float("-inf")), ll)

    monkeypatch.setattr(dag_loss_mod, "dag_log_likelihood", first_is_inf)  # the shared mean_finite_nll
    loss, _, log = crit(model, make_sample(d, PAIRS))
    assert log["nonfinite"] == 1 and torch.isfinite(loss)


def test_levels_are_uniform_and_follow_the_torch_seed():
    _, d = build_diffglat()
    crit = criterion(d)
    torch.manual_seed(0)
    draws = [crit.sample_level(6) for _ in range(600)]
    assert set(draws) == set(range(1, 7)) and all(abs(draws.count(t) - 100) < 35 for t in range(1, 7))
    torch.manual_seed(0)
    assert [crit.sample_level(6) for _ in range(600)] == draws


def test_per_transition_losses_average_over_the_steps_that_sampled_them():
    logs = [
        {"loss": 2.0, "sample_size": 1, "level": 1, "loss_t5": 2.0 * 3, "loss_t5_n": 3},
        {"loss": 4.0, "sample_size": 1, "level": 6, "loss_t0": 4.0 * 2, "loss_t0_n": 2},
        {"loss": 1.0, "sample_size": 1, "level": 1, "loss_t5": 1.0 * 1, "loss_t5_n": 1, "gamma_sum": 1.5,
         "gamma_n": 2},
    ]
    with metrics.aggregate() as agg:
        for log in logs:  # one reduce per training step, as fairseq does
            DiffGLATLoss.reduce_metrics([log])
    values = agg.get_smoothed_values()
    ln2 = torch.log(torch.tensor(2.0)).item()
    assert values["loss_t5"] == pytest.approx((6 + 1) / 4 / ln2, abs=1e-3)  # sentence-weighted over its 2 steps
    assert values["loss_t0"] == pytest.approx(4.0 / ln2, abs=1e-3)
    assert "loss_t1" not in values
    assert values["level"] == pytest.approx(8 / 3, abs=1e-2)
    assert values["gamma"] == pytest.approx(0.75)


def test_options_are_checked_and_schedules_follow_updates():
    _, d = build_diffglat()
    for bad in (dict(glance_alpha="2"), dict(modality_gammas="0.5,x"), dict(modality_gammas="0,0.5"),
                dict(modality_keep=1.5), dict(diffusion_warmup_updates=-1)):
        with pytest.raises(NATUserError):
            DiffGLATLoss(_Task(d), **bad)
    crit = DiffGLATLoss(_Task(d), glance_alpha="0.5:0.1@100", glance_alpha_periodic=True)
    model, _ = build_diffglat()
    model.set_num_updates(150)
    assert crit.glance_ratio(model) == pytest.approx(0.3) and crit.num_updates == 150
    assert crit.target_kind(2) == "data"  # default warm-up: 100k updates
    model.set_num_updates(100_000)
    crit.glance_ratio(model)
    assert crit.target_kind(2) == "modality" and crit.target_kind(1) == "data"


class _HandGraphs:
    """A model stand-in whose transition ``j`` outputs a hand-written DAG."""
    bos, pad, eos = 0, 1, 2

    def __init__(self, graphs):
        self.graphs = graphs

    def transition_outputs(self, j, graph_len):
        return self.graphs[j]


def _hand_graph(emissions, V=8):
    """4 vertices, links 0->1 and 0->2 (1/2 each), 1->3 and 2->3; ``emissions``: per vertex
    ``{token: weight}``, every other token weight 0.01.  Returns ``(logits [1, 4, V], links [1, 4, 4])``."""
    weights = torch.full((1, 4, V), 0.01)
    for j, row in enumerate(emissions):
        for tok, w in row.items():
            weights[0, j, tok] = w
    links = torch.full((1, 4, 4), float("-inf"))
    links[0, 0, 1] = links[0, 0, 2] = torch.log(torch.tensor(0.5))
    links[0, 1, 3] = links[0, 2, 3] = 0.0
    return weights.log(), links


def test_eq13_reads_the_next_distribution_at_the_intermediate_targets_alignment():
    x, a, c, z = 4, 5, 6, 7
    y0 = torch.tensor([[x, a, z]])
    real = torch.ones_like(y0, dtype=torch.bool)
    # transition 0: y0 = x a z aligns through vertex 2 (a: 0.2 > 0.05 at vertex 1), whose argmax is c
    first = _hand_graph([{x: 1.0}, {z: 0.7, a: 0.05}, {c: 0.6, a: 0.2}, {z: 1.0}])
    # transition 1: y0 would align through vertex 1 (a: 0.5), ~y_T = x c z through vertex 2 (c: 0.6 > 0.3)
    nxt = _hand_graph([{x: 1.0}, {a: 0.5, c: 0.3}, {c: 0.6, a: 0.1}, {z: 1.0}])
    model = _HandGraphs([first, nxt])
    sizes = (torch.tensor([4]), torch.tensor([3]), torch.tensor([0]), lambda t: t)
    _, d = build_diffglat()
    seen = []
    crit = criterion(d)
    real_align = crit.best_alignment

    def spy(logits, links, target, sizes):
        out = real_align(logits, links, target, sizes)
        seen.append((target.tolist(), out.tolist()))
        return out

    crit.best_alignment = spy
    y_tilde, gamma, share = crit.modality_targets(model, [0, 1], y0, real, sizes)
    # ~y_T = transition 0's argmax at y0's vertices 0, 2, 3: x c z.  Next, ~y_T's alignment to
    # transition 1 (vertices 0, 2, 3): P(a) / max P = 0.1 / 0.6 at position 1, so a is dropped
    # for every gamma of the set, while x and z (already right in ~y_T) are the argmax: gamma = 1.
    assert seen == [([[x, a, z]], [[0, -1, 1, 2]]), ([[x, c, z]], [[0, -1, 1, 2]])]
    assert y_tilde.tolist() == [[x, c, z]] and gamma.tolist() == [1.0]
    assert share.tolist() == [pytest.approx(2 / 3)]
    # read at y0's alignment (vertex 1), the same step would have kept a: P(a) is the max there
    seen.clear()
    y_tilde, _, _ = crit.modality_targets(_HandGraphs([nxt, nxt]), [0, 1], y0, real, sizes)
    assert seen[0] == ([[x, a, z]], [[0, 1, -1, 2]]) and y_tilde.tolist() == [[x, a, z]]


def test_the_modality_chain_runs_transitions_0_to_k_plus_1_each_read_at_the_previous_target(monkeypatch):
    model, d = build_diffglat(upsample_scale="3")
    model.train()
    calls = spy_transitions(monkeypatch, model)
    crit = criterion(d, level=3)  # T = 6, k = 3: the chain ~y_6 .. ~y_2 reads transitions 0..4
    aligned = []
    real_align = crit.best_alignment

    def spy_align(logits, links, target, sizes):
        aligned.append((logits.clone(), target.clone()))
        return real_align(logits, links, target, sizes)

    crit.best_alignment = spy_align
    chains = []
    real_chain = loss_mod.modality_chain

    def spy_chain(*args, **kwargs):
        out = real_chain(*args, **kwargs)
        chains.append(out)
        return out

    monkeypatch.setattr(loss_mod, "modality_chain", spy_chain)
    losses = record_targets(monkeypatch)
    sample = make_sample(d, PAIRS)
    _, _, log = crit(model, sample)
    assert [c[0] for c in calls] == [0, 1, 2, 3, 4, 3]  # grad 0..2, forked 3 and 4, gradient pass 3
    (targets, gammas), = chains
    assert len(targets) == 5 and len(gammas) == 4
    y0 = sample["target"][:, :4].masked_fill(sample["target"][:, :4].eq(d.eos()), d.pad())
    assert [t.tolist() for _, t in aligned] == [y0.tolist()] + [t.tolist() for t in targets[:-1]]
    for j, (logits, _) in enumerate(aligned):  # transition j's graph is read at step j
        assert torch.equal(logits, model.token_logits(calls[j][2]))
    assert torch.equal(losses[-1], targets[-1]) and log["gamma_sum"] == pytest.approx(float(gammas[-1].sum()))


def test_alpha_anneal_restarts_for_iterative_models_by_default():
    from fairseq.dataclass.utils import gen_parser_from_dataclass
    import argparse

    _, d = build_diffglat()
    iterative, _ = build_diffglat(diffusion_iterations=3)
    single, _ = build_diffglat(diffusion_iterations=1)
    for model in (iterative, single):
        model.set_num_updates(150)
    cases = {"auto": (0.3, 0.1), "on": (0.3, 0.3), "off": (0.1, 0.1), True: (0.3, 0.3), False: (0.1, 0.1)}
    for mode, (alpha_iterative, alpha_single) in cases.items():
        crit = DiffGLATLoss(_Task(d), glance_alpha="0.5:0.1@100", glance_alpha_periodic=mode)
        # 0.5 -> 0.1 over 100 updates: at 150, 0.3 when restarted at 100, else 0.1
        assert crit.glance_ratio(iterative) == pytest.approx(alpha_iterative), mode
        assert crit.glance_ratio(single) == pytest.approx(alpha_single), mode
    with pytest.raises(NATUserError, match="--glance-alpha-periodic"):
        DiffGLATLoss(_Task(d), glance_alpha_periodic="sometimes")
    parser = argparse.ArgumentParser()
    gen_parser_from_dataclass(parser, loss_mod.DiffGLATLossConfig())
    assert parser.parse_args([]).glance_alpha_periodic == "auto"
    assert parser.parse_args(["--glance-alpha-periodic"]).glance_alpha_periodic == "on"
    assert parser.parse_args(["--glance-alpha-periodic", "off"]).glance_alpha_periodic == "off"
