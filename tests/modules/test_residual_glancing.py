"""Residual glancing (DiffGLAT §3.2 eq. 12) and the periodic alpha schedule."""
import pytest
import torch

from nat_plugins.modules.glancing import GlanceSchedule
from nat_plugins.modules.residual_glancing import ResidualGlancingSampler

# 3 sentences, 8 vertices: target index on the best path, -1 elsewhere
ALIGNMENT = torch.tensor([
    [0, -1, 1, 2, -1, 3, -1, 4],     # |y| = 5
    [0, 1, -1, -1, 2, -1, -1, -1],   # |y| = 3
    [0, -1, -1, -1, -1, -1, -1, 1],  # |y| = 2
])
# ^y_{t-1} == ~y_{t-1} (the count's "same")
CORRECT = torch.tensor([
    [1, 0, 0, 0, 0, 1, 0, 0],        # same = 2 -> d = 3
    [0, 0, 0, 0, 0, 0, 0, 0],        # d = 3
    [1, 0, 0, 0, 0, 0, 0, 1],        # d = 0
], dtype=torch.bool)
# ^y_t == ~y_{t-1}: captured by the previous output
CAPTURED = torch.tensor([
    [1, 1, 1, 0, 0, 0, 1, 0],        # aligned & captured: 0, 2 -> eligible 3, 5, 7
    [1, 0, 0, 0, 1, 0, 0, 0],        # eligible: 1
    [0, 0, 0, 0, 0, 0, 0, 0],
], dtype=torch.bool)


def test_picks_exactly_S_only_among_aligned_vertices_the_previous_output_has_wrong():
    sampler = ResidualGlancingSampler()
    eligible = ALIGNMENT.ge(0) & ~CAPTURED
    seen = torch.zeros_like(CORRECT)
    for alpha, expected in ((0.5, [2, 1, 0]), (1.0, [3, 1, 0]), (0.2, [1, 1, 0]), (0.0, [0, 0, 0])):
        # S = round(alpha * d) with d = 3, 3, 0; capped at the eligible count (3, 1, 0)
        for seed in range(25):
            glanced = sampler.select(ALIGNMENT, CORRECT, alpha, generator=torch.Generator().manual_seed(seed),
                                     captured=CAPTURED)
            assert glanced.sum(1).tolist() == expected, alpha
            assert not (glanced & ~eligible).any()  # never where ^y_t == ~y_{t-1}, never off the path
            seen |= glanced
    assert torch.equal(seen, eligible & torch.tensor([[True], [True], [False]]))  # uniform: all eligible get drawn


def test_without_a_previous_output_it_is_glat_glancing():
    sampler = ResidualGlancingSampler()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    from nat_plugins.modules.glancing import GlancingSampler

    assert torch.equal(sampler.select(ALIGNMENT, CORRECT, 0.5, generator=g1),
                       GlancingSampler().select(ALIGNMENT, CORRECT, 0.5, generator=g2))


def test_periodic_schedule_restarts_the_anneal():
    s = GlanceSchedule("0.5:0.1@100", periodic=True)
    assert s(0) == pytest.approx(0.5)
    assert s(50) == pytest.approx(0.3)
    assert s(99) == pytest.approx(0.104)
    assert s(100) == pytest.approx(0.5)
    assert s(250) == pytest.approx(0.3)
    flat = GlanceSchedule("0.5:0.1@100")
    assert flat(250) == pytest.approx(0.1)
    assert GlanceSchedule("0.2", periodic=True)(12345) == pytest.approx(0.2)
