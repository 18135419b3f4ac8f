"""Mask-Predict schedule and the shared generator, on a scripted fake model."""
import torch

from nat_plugins.decoding.generator import NATGenerator
from nat_plugins.decoding.mask_predict import MaskPredict, remask_lowest
from nat_plugins.decoding import mask_predict
from nat_plugins.decoding.strategy import DecodingOptions

PAD, EOS, BOS, UNK = 1, 2, 0, 3
V = 12


class FakeDict:
    def pad(self):
        return PAD

    def eos(self):
        return EOS

    def bos(self):
        return BOS

    def unk(self):
        return UNK


class FakeEncoder:
    def reorder_encoder_out(self, enc, order):
        return {"rows": enc["rows"][order]}


class FakeCMLM:
    """Predicts token ``4 + position`` with a fixed per-(row, position)
    confidence, and records how many masks each call saw."""

    decoding_family = "cmlm"
    mask_idx = UNK
    pad = PAD

    def __init__(self, lengths_per_source, length_logp=None):
        self.encoder = FakeEncoder()
        self.lengths_per_source = lengths_per_source
        self.masks_seen = []
        self.training = False

    def eval(self):
        return self

    def encode(self, src_tokens, src_lengths):
        return {"rows": torch.arange(src_tokens.size(0))}

    def source_lengths(self, src_tokens):
        return (src_tokens.ne(PAD) & src_tokens.ne(EOS)).sum(1)

    def predict_lengths(self, enc, src_tokens, k=1):
        lengths = self.lengths_per_source[enc["rows"], :k]
        return lengths, torch.zeros(lengths.shape)

    def initial_canvas(self, lengths):
        width = int(lengths.max())
        pos = torch.arange(width)[None, :]
        return torch.full((lengths.numel(), width), UNK).masked_fill(pos >= lengths[:, None], PAD)

    def refine_logprobs(self, tokens, enc):
        n, length = tokens.shape
        self.masks_seen.append(tokens.eq(UNK).sum(1).tolist())
        lp = torch.full((n, length, V), -20.0)
        conf = -0.1 * (torch.arange(length)[None, :] + 1.0) - 0.01 * enc["rows"][:, None]
        lp.scatter_(2, (4 + torch.arange(length) % (V - 4)).expand(n, length).unsqueeze(-1), conf.unsqueeze(-1))
        return lp


def test_remask_lowest_picks_lowest_real_positions():
    scores = torch.tensor([[-0.1, -5.0, -0.3, -2.0, 9.0]])
    m = remask_lowest(scores, torch.tensor([4]), torch.tensor([2]))
    assert m.tolist() == [[False, True, False, True, False]]


def test_linear_decay_schedule():
    T, N = 4, 10
    model = FakeCMLM(torch.tensor([[N]]))
    strat = MaskPredict(DecodingOptions(iterations=T))
    gen = NATGenerator(FakeDict(), strat)
    src = torch.tensor([[5, 6, EOS]])
    out = gen.generate([model], {"net_input": {"src_tokens": src, "src_lengths": torch.tensor([3])}})
    # passes see N, then floor(N*(T-t-1)/T) masks for t = 0..T-2
    assert [m[0] for m in model.masks_seen] == [10, 7, 5, 2]
    hyp = out[0][0]
    assert hyp["tokens"].tolist() == [4 + i % (V - 4) for i in range(N)] + [EOS]
    assert hyp["steps"] == T
    assert len(hyp["positional_scores"]) == N + 1


def test_length_beam_candidates_are_reranked_by_mean_logprob_and_empty_source():
    # source 0: candidates of length 2 and 6; the fake model is more
    # confident on early positions, so the short candidate wins.
    model = FakeCMLM(torch.tensor([[6, 2], [3, 4]]))
    gen = NATGenerator(FakeDict(), MaskPredict(DecodingOptions(iterations=2, length_beam=2)), retain_history=True)
    src = torch.tensor([[5, 6, EOS], [PAD, PAD, EOS], [7, 8, EOS]])
    out = gen.generate([model], {"net_input": {"src_tokens": src, "src_lengths": torch.tensor([3, 1, 3])}})
    assert [len(h) for h in out] == [2, 1, 2]
    assert len(out[0][0]["tokens"]) - 1 == 2  # best = shorter
    assert out[0][0]["score"] >= out[0][1]["score"]
    assert out[1][0]["tokens"].tolist() == [EOS]  # empty source -> empty output
    assert len(out[0][0]["history"]) == 3  # initial canvas + 2 steps


def test_early_stop_freezes_converged_rows_unmasked():
    model = FakeCMLM(torch.tensor([[5]]))
    gen = NATGenerator(FakeDict(), MaskPredict(DecodingOptions(iterations=10, early_stop=True)))
    src = torch.tensor([[5, 6, EOS]])
    out = gen.generate([model], {"net_input": {"src_tokens": src, "src_lengths": torch.tensor([3])}})
    hyp = out[0][0]
    assert hyp["steps"] < 10
    assert UNK not in hyp["tokens"].tolist()


def unfused_masked_predictions(model, tokens, encoder_out, masked):
    """The step's vocabulary work before issue #20 (oracle): a full [N, L, V] log-softmax, max everywhere."""
    scores, best = model.refine_logprobs(tokens, encoder_out).max(-1)
    return scores[masked], best[masked]


def test_masked_only_projection_gives_the_full_log_softmax_hypotheses_on_a_real_cmlm(monkeypatch):
    """A random tiny CMLM over 300 words, 12 sources of 1-9 tokens, 3 lengths x 5 iterations (and batch 1):
    hypotheses, positional scores and scores equal the unfused step's exactly."""
    import tests.model_builders as builders
    from nat_plugins.models.cmlm import CMLMModel, cmlm_tiny
    from nat_plugins.modules import vocab_projection

    model, _, d = builders.build_tiny(CMLMModel, cmlm_tiny, words=" ".join(f"w{i}" for i in range(300)), seed=4)
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 10, (12,), generator=g)
    src = torch.full((12, 10), d.pad())
    for i, n in enumerate(lengths.tolist()):  # left-padded, as fairseq batches sources
        src[i, 10 - n - 1:-1] = torch.randint(d.nspecial, len(d), (n,), generator=g)
        src[i, -1] = d.eos()
    sample = {"net_input": {"src_tokens": src, "src_lengths": lengths + 1}}
    fused = mask_predict.masked_predictions
    for chunk in (vocab_projection.CHUNK_ELEMENTS, 2000):  # 2000 values = 6 rows per chunk, with tails
        monkeypatch.setattr(vocab_projection, "CHUNK_ELEMENTS", chunk)
        for rows in (slice(None), slice(0, 1)):
            part = {"net_input": {k: v[rows] for k, v in sample["net_input"].items()}}
            outs = []
            for predict in (fused, unfused_masked_predictions):
                monkeypatch.setattr(mask_predict, "masked_predictions", predict)
                outs.append(NATGenerator(d, MaskPredict(DecodingOptions(iterations=5, length_beam=3)))
                            .generate([model], part))
            for new, old in zip(*outs):
                assert len(new) == len(old)
                for h_new, h_old in zip(new, old):
                    assert torch.equal(h_new["tokens"], h_old["tokens"])
                    # scores: equal up to float rounding; with more than one BLAS thread (CI does not set
                    # OMP_NUM_THREADS) the chunked and full projections may round the last bit differently
                    torch.testing.assert_close(h_new["positional_scores"], h_old["positional_scores"],
                                               rtol=1e-5, atol=1e-6)
                    assert abs(float(h_new["score"]) - float(h_old["score"])) <= 1e-5
