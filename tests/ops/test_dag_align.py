"""Best alignment vs brute force."""
import torch

import dag_brute_force as bf
from dag_test_utils import clean, random_batch
from nat_plugins.ops import dag_best_alignment

MIXED = dict(P_len=[8, 7, 6, 8, 3, 1, 5, 4, 8], T_len=[6, 2, 6, 1, 3, 1, 5, 4, 8])


def _check(match, links, P_len, T_len):
    m0, l0 = match.clone(), links.clone()
    got = dag_best_alignment(match, links, P_len, T_len, impl="torch")
    ref, _ = bf.best_alignment(clean(match), clean(links), P_len, T_len)
    assert got.dtype == torch.long and got.shape == match.shape[:1] + match.shape[2:]
    assert torch.equal(got, ref)
    assert torch.equal(match.nan_to_num(), m0.nan_to_num()) and torch.equal(links.nan_to_num(), l0.nan_to_num())


def test_alignment_mixed_lengths():
    for seed in range(3):
        _check(*random_batch(**MIXED, seed=seed))


def test_alignment_neg_inf_links_and_no_path():
    match, links, P_len, T_len = random_batch(**MIXED, seed=11, neg_inf_frac=0.5)
    _check(match, links, P_len, T_len)
    assert (dag_best_alignment(match, links, P_len, T_len, impl="torch")[3] == -1).all()  # T_b=1 < P_b


def test_alignment_large_values_and_padding_dims():
    match, links, P_len, T_len = random_batch(**MIXED, T=9, P=10, seed=12, link_scale=500.0)
    _check(match, links, P_len, T_len)


def test_alignment_fp16_inputs():
    match, links, P_len, T_len = random_batch(**MIXED, seed=13, pad_value=0.0)
    m16, l16 = match.half(), links.half()
    got = dag_best_alignment(m16, l16, P_len, T_len, impl="torch")
    ref, _ = bf.best_alignment(m16.double(), l16.double(), P_len, T_len)
    assert torch.equal(got, ref)
