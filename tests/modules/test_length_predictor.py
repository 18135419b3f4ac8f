import torch

from nat_plugins.modules.length_predictor import MeanPoolLengthPredictor


def test_top_lengths_are_the_most_probable_classes_not_argmax_window():
    lp = MeanPoolLengthPredictor(4, max_length=16)
    logits = torch.full((1, 16), -10.0)
    logits[0, 3], logits[0, 9], logits[0, 12] = 5.0, 4.0, 3.0  # far apart on purpose
    lengths, logp = lp.top_lengths(logits, torch.tensor([5]), k=3)
    assert lengths.tolist() == [[3, 9, 12]]
    assert (logp[0, :-1] >= logp[0, 1:]).all()


def test_offset_roundtrip_and_clamping():
    lp = MeanPoolLengthPredictor(4, max_length=16, predict_offset=True)
    src = torch.tensor([5, 5, 5])
    tgt = torch.tensor([5, 7, 100])
    cls = lp.length_to_class(tgt, src)
    assert cls.tolist() == [8, 10, 15]
    assert lp.class_to_length(cls[:2].unsqueeze(-1), src[:2]).squeeze(-1).tolist() == [5, 7]


def test_empty_source_gets_length_zero_and_zero_is_never_proposed_otherwise():
    lp = MeanPoolLengthPredictor(4, max_length=8)
    logits = torch.zeros(2, 8)
    logits[:, 0] = 100.0  # the model likes length 0
    lengths, _ = lp.top_lengths(logits, torch.tensor([0, 3]), k=2)
    assert lengths[0].tolist() == [0, 0]
    assert 0 not in lengths[1].tolist()


def test_max_len_bound():
    lp = MeanPoolLengthPredictor(4, max_length=32)
    logits = torch.zeros(1, 32)
    logits[0, 30] = 50.0
    lengths, _ = lp.top_lengths(logits, torch.tensor([4]), k=2, max_len=20)
    assert (lengths <= 20).all() and 30 not in lengths.tolist()[0]


def test_mean_pool_ignores_padding_and_stop_gradient():
    torch.manual_seed(0)
    lp = MeanPoolLengthPredictor(4, max_length=8, stop_gradient=True)
    states = torch.randn(3, 1, 4, requires_grad=True)  # [S, B, C]
    pad = torch.tensor([[False, False, True]])
    out = lp(states, pad)
    ref = lp.proj(states[:2, 0].mean(0, keepdim=True))
    assert torch.allclose(out, ref)
    out.sum().backward()
    assert states.grad is None
    lp2 = MeanPoolLengthPredictor(4, max_length=8, stop_gradient=False)
    lp2(states, pad).sum().backward()
    assert states.grad is not None and states.grad[2].abs().sum() == 0
