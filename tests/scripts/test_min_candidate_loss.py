"""scripts/evaluation/min_candidate_loss.py: the validation loss against the closest candidate target.

On a model whose output distribution is set by hand, every per-candidate loss equals the loss computed here
from the logits by hand, the reported loss is the per-sentence minimum over the candidates, and a target that
is no candidate costs strictly more.  Per model family, the deterministic reading equals the criterion's own
validation NLL on the data targets (untrained tiny models, no training).
"""
import math

import pytest

pytest.importorskip("fairseq")

import torch  # noqa: E402

import min_candidate_loss as mcl  # noqa: E402
import synthetic_multimodality as sm  # noqa: E402

N, LENGTH, VALID = 5, 4, 12


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """``(raw dir, binarized dir)`` of a 2-modality synthetic set (candidates I and II)."""
    base = tmp_path_factory.mktemp("synthetic")
    raw, data_bin = base / "raw", base / "bin"
    assert sm.main(["make-data", "--raw-dir", str(raw), "--dest-dir", str(data_bin), "--num-tokens", str(N),
                    "--length", str(LENGTH), "--modalities", "2", "--train", "40", "--valid", str(VALID),
                    "--test", "4", "--seed", "3", "--quiet"]) == 0
    return raw, data_bin


def _setup(data_bin, *flags):
    """``(args, task, model in eval mode, criterion)`` of an untrained model built from training flags."""
    from fairseq import options, tasks

    import nat_plugins

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(data_bin), "--user-dir", nat_plugins.__path__[0], "--cpu",
                                                "--dropout", "0", "--seed", "1", *flags])
    task = tasks.setup_task(args)
    torch.manual_seed(1)
    model = task.build_model(args).eval()
    return args, task, model, task.build_criterion(args)


def test_min_over_candidates_matches_a_hand_computation_and_beats_a_wrong_target(synthetic):
    raw, data_bin = synthetic
    _, task, model, _ = _setup(data_bin, "--task", "nat_translation", "--arch", "cmlm_tiny", "--criterion",
                               "cmlm_loss")
    tgt_dict = task.target_dictionary
    # The hand-built output: the same logits at every position, independent of the source. Even symbols of
    # modalities I/II (1..2N + N) are favoured, so which of I and II is closer depends on the sentence;
    # symbols above 3N (modalities III, IV) are unlikely.
    table = torch.zeros(len(tgt_dict))
    for symbol in range(1, 5 * N + 1):
        table[tgt_dict.index(str(symbol))] = -4.0 if symbol > 3 * N else (2.0 if symbol % 2 == 0 else 0.0)
    model.decoder.output_layer = lambda features: table.expand(*features.shape[:-1], table.numel())
    logp2 = torch.log_softmax(table, -1) / math.log(2)

    def by_hand(target):
        return sum(-float(logp2[tgt_dict.index(str(t))]) for t in target) / len(target)

    sources = [[int(x) for x in line.split()] for line in (raw / "valid.src").read_text().splitlines()]
    candidates = mcl.read_candidates(str(raw / "valid.candidates"))
    losses = mcl.candidate_losses(model, "cmlm_loss", task, "valid", candidates, batch_size=5)  # 3 batches
    expected = [[by_hand(sm.modality_target(s, m, N)) for s in sources] for m in ("I", "II")]
    assert [[round(v, 5) for v in row] for row in losses] == [[round(v, 5) for v in row] for row in expected]
    mins = [min(a, b) for a, b in zip(*expected)]
    clear = [(n, 0 if a < b else 1) for n, (a, b) in enumerate(zip(*expected)) if abs(a - b) > 1e-4]
    assert {pick for _, pick in clear} == {0, 1}  # both candidates win somewhere: the minimum is per sentence
    _, tool_picks = mcl.min_over_candidates(losses)
    assert all(tool_picks[n] == pick for n, pick in clear)  # exact ties may go either way in float32
    result = mcl.summarize(losses)
    assert result["valid_min_loss"] == pytest.approx(sum(mins) / VALID, abs=1e-4)
    assert result["valid_min_loss"] < min(result["per_candidate_loss"])
    assert sum(result["argmin_share"]) == pytest.approx(100.0, abs=0.02)
    # A wrong target (modality III, no candidate of this data) costs strictly more than the minimum.
    wrong = [[" ".join(str(t) for t in sm.modality_target(s, "III", N))] for s in sources]
    with pytest.raises(ValueError, match="none of its candidates"):
        mcl.candidate_losses(model, "cmlm_loss", task, "valid", wrong)
    wrong_losses = [by_hand(sm.modality_target(s, "III", N)) for s in sources]
    assert all(w > m for w, m in zip(wrong_losses, mins))
    # and through the tool, with the wrong target added as a third candidate: it never is the minimum
    with_wrong = [row + w for row, w in zip(candidates, wrong)]
    third = mcl.summarize(mcl.candidate_losses(model, "cmlm_loss", task, "valid", with_wrong))
    assert third["argmin_share"][2] == 0.0 and third["valid_min_loss"] == result["valid_min_loss"]
    assert third["per_candidate_loss"][2] == pytest.approx(sum(wrong_losses) / VALID, abs=1e-4)


def test_summarize_keeps_nonfinite_sentences_out_and_breaks_ties_to_the_first():
    result = mcl.summarize([[1.0, math.inf, 2.0], [1.0, math.nan, 0.5]])
    assert result["valid_min_loss"] == pytest.approx(0.75) and result["nonfinite"] == 1
    assert result["argmin_share"] == [50.0, 50.0]  # sentence 0 ties: candidate 0


FAMILIES = {
    "ar": ["--task", "translation", "--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1",
           "--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
           "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
           "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"],
    "vanilla": ["--task", "nat_translation", "--arch", "cmlm_tiny", "--criterion", "pml_loss"],
    "dat": ["--task", "nat_translation", "--arch", "dat_tiny", "--criterion", "dag_loss", "--upsample-scale", "4"],
    "diffglat": ["--task", "nat_translation", "--arch", "diffglat_tiny", "--criterion", "diffglat_loss",
                 "--upsample-scale", "4", "--diffusion-iterations", "2"],
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_reading_is_the_criterions_validation_nll(synthetic, family):
    """The data's own targets scored by the tool == the criterion's NLL in eval mode (equal lengths, so the
    per-sentence mean is also the pooled one)."""
    _, data_bin = synthetic
    args, task, model, criterion = _setup(data_bin, *FAMILIES[family])
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    with torch.no_grad():
        nll, tokens = mcl.sentence_nll(model, args.criterion, sample)
        _, sample_size, log = criterion(model, sample)
    ours = float((nll / tokens.double()).mean())
    theirs = float(log["nll_loss"]) / (sample_size if family == "ar" else 1)
    assert ours == pytest.approx(theirs, rel=1e-4)


def test_unknown_criterion_is_refused():
    with pytest.raises(ValueError, match="no deterministic loss reading"):
        mcl.sentence_nll(None, "nat_loss", {})
