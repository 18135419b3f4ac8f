import collections

import torch

from nat_plugins.modules.noise import uniform_mask

PAD, MASK = 1, 3


def _batch():
    target = torch.tensor([[10, 11, 12, 13, 14, PAD], [20, 21, PAD, PAD, PAD, PAD], [30, 31, 32, 33, 34, 35]])
    return target, target.ne(PAD)


def test_only_real_positions_are_masked_and_input_untouched():
    target, real = _batch()
    before = target.clone()
    for seed in range(50):
        g = torch.Generator().manual_seed(seed)
        noised, masked = uniform_mask(target, real, MASK, generator=g)
        assert torch.equal(target, before)
        assert not (masked & ~real).any()
        assert torch.equal(noised[masked], torch.full((int(masked.sum()),), MASK))
        assert torch.equal(noised[~masked], target[~masked])
        assert (masked.sum(1) >= 1).all()


def test_number_of_masks_is_uniform_on_1_to_n():
    target = torch.full((20000, 4), 7)
    real = torch.ones_like(target, dtype=torch.bool)
    _, masked = uniform_mask(target, real, MASK, generator=torch.Generator().manual_seed(0))
    counts = collections.Counter(masked.sum(1).tolist())
    assert set(counts) == {1, 2, 3, 4}
    for k in range(1, 5):
        assert abs(counts[k] / 20000 - 0.25) < 0.02, counts


def test_positions_are_chosen_uniformly():
    target = torch.full((20000, 5), 7)
    real = torch.ones_like(target, dtype=torch.bool)
    _, masked = uniform_mask(target, real, MASK, generator=torch.Generator().manual_seed(1))
    rate = masked.float().mean(0)
    # E[k]/n = 3/5 for n = 5, the same at every position
    assert torch.allclose(rate, torch.full((5,), 0.6), atol=0.02), rate


def test_empty_target_masks_nothing():
    target = torch.tensor([[PAD, PAD]])
    noised, masked = uniform_mask(target, target.ne(PAD), MASK)
    assert not masked.any() and torch.equal(noised, target)
