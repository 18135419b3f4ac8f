"""scripts/data/synthetic_multimodality.py: DiffGLAT's synthetic task (Appendix A).

The generator is checked against Table 1's worked example, the evaluator
against hand-computed closest-target accuracies, and the whole chain
(make-data -> binarize -> train a tiny CMLM -> generate -> evaluate) end to
end on a tiny instance.
"""
import collections
import json
import os
import random

import pytest

pytest.importorskip("fairseq")

import synthetic_multimodality as sm  # noqa: E402  (imports nat_plugins, hence fairseq)
from tests import root_conftest  # noqa: E402


_helpers = root_conftest.load()
run_generate, run_train, train_args = _helpers.run_generate, _helpers.run_train, _helpers.train_args

N = 5000
SOURCE = [52, 1, 937, 1234]
# Table 1 of the paper, with N = 5000
TABLE_1 = {
    "I": [5052, 10001, 5937, 11234],
    "II": [10052, 5001, 10937, 6234],
    "III": [15052, 20001, 15937, 21234],
    "IV": [20052, 15001, 20937, 16234],
}


def _line(tokens):
    return " ".join(str(t) for t in tokens)


@pytest.mark.parametrize("modality", sm.MODALITIES)
def test_targets_follow_table_1(modality):
    assert sm.modality_target(SOURCE, modality, N) == TABLE_1[modality]


def test_candidates_are_in_modality_order():
    assert sm.candidate_targets(SOURCE, N) == [TABLE_1[m] for m in ("I", "II", "III", "IV")]


def test_pairs_are_uniform_in_modality_deterministic_and_in_range():
    pairs = sm.make_pairs(4000, 8, 20, random.Random(3))
    counts = collections.Counter(m for _, m, _ in pairs)
    # binomial(4000, 1/4): sd 27, so +-150 is far beyond chance
    assert set(counts) == set(sm.MODALITIES) and all(abs(c - 1000) < 150 for c in counts.values())
    assert all(len(s) == 8 and all(1 <= x <= 20 for x in s) for s, _, _ in pairs)
    assert all(t == sm.modality_target(s, m, 20) for s, m, t in pairs)
    assert sm.make_pairs(50, 8, 20, random.Random(3)) == pairs[:50]
    assert sm.make_pairs(50, 8, 20, random.Random(4)) != pairs[:50]


def test_scale_and_the_test_split_independent_of_the_train_size(tmp_path):
    assert sm.split_sizes(100000, 5000, 5000, 0.1) == {"train": 10000, "valid": 500, "test": 500}
    small, large = tmp_path / "small", tmp_path / "large"
    sm.write_raw(str(small), {"train": 10, "valid": 5, "test": 7}, 8, 20, seed=2)
    sm.write_raw(str(large), {"train": 50, "valid": 5, "test": 7}, 8, 20, seed=2)
    assert (small / "test.src").read_text() == (large / "test.src").read_text()
    assert (small / "test.modality").read_text() == (large / "test.modality").read_text()
    assert (small / "train.src").read_text().splitlines() == (large / "train.src").read_text().splitlines()[:10]


def test_exact_modality_ii_output_scores_100():
    result = sm.evaluate([_line(TABLE_1["II"])], [_line(SOURCE)], N)
    assert result["token_accuracy"] == 100.0 and result["sequence_accuracy"] == 100.0
    assert result["closest_modality_share"] == {"I": 0.0, "II": 100.0, "III": 0.0, "IV": 0.0}
    assert result["mixed_modality_outputs"] == 0.0 and result["modalities_per_output"] == 1.0


def test_mix_of_modalities_scores_against_the_closest():
    source = list(range(1, 9))
    one, two = sm.modality_target(source, "I", 20), sm.modality_target(source, "II", 20)
    mostly_two = one[:3] + two[3:]  # 5 of 8 from II -> closest II
    half = one[:4] + two[4:]  # 4 / 4: a tie -> the first, I
    result = sm.evaluate([_line(mostly_two), _line(half)], [_line(source)] * 2, 20)
    assert result["token_accuracy"] == pytest.approx(100 * (5 + 4) / 16, abs=0.01)
    assert result["sequence_accuracy"] == 0.0
    assert result["closest_modality_share"] == {"I": 50.0, "II": 50.0, "III": 0.0, "IV": 0.0}
    # every token is right under some modality, but both outputs mix I and II
    assert result["any_modality_token_accuracy"] == 100.0
    assert result["mixed_modality_outputs"] == 100.0 and result["modalities_per_output"] == 2.0


def test_wrong_length_counts_missing_and_extra_positions_as_wrong():
    source = list(range(1, 9))
    three = sm.modality_target(source, "III", 20)
    short = _line(three[:6])  # 6 right of 8
    long = _line(three + [61, 62])  # 8 right of 10
    result = sm.evaluate([short, long], [_line(source)] * 2, 20)
    assert result["token_accuracy"] == pytest.approx(100 * 14 / 18, abs=0.01)
    assert result["sequence_accuracy"] == 0.0
    assert result["closest_modality_share"]["III"] == 100.0
    empty = sm.evaluate([""], [_line(source)], 20)
    assert empty["token_accuracy"] == 0.0 and empty["closest_modality_share"]["I"] == 100.0


def test_non_numbers_never_match_and_bad_input_is_one_error():
    source = [1, 2]
    result = sm.evaluate(["<unk> 42"], [_line(source)], 20)  # 42 = 2 + 2N: modality I at position 2
    assert result["token_accuracy"] == 50.0
    assert result["any_modality_token_accuracy"] == 50.0 and result["modalities_per_output"] == 1.0
    with pytest.raises(sm.NATUserError, match="2 hypotheses for 1 sources"):
        sm.evaluate(["a", "b"], ["1 2"], 20)
    with pytest.raises(sm.NATUserError, match="not a sequence of integers"):
        sm.evaluate(["1"], ["x y"], 20)


def test_generate_output_checks(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "meta.json").write_text(json.dumps({"num_tokens": 20}))
    (raw / "test.src").write_text("1 2\n3 4\n")
    out = tmp_path / "gen.out"
    # ids out of order, as fairseq-generate prints them; sentence 1 is modality IV
    out.write_text("S-1\t3 4\nT-1\t83 64\nH-1\t-0.1\t83 64\nT-0\t21 42\nH-0\t-0.2\t21 99\n")
    assert sm.main(["evaluate", str(out), "--raw-dir", str(raw), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["token_accuracy"] == 75.0 and result["sequence_accuracy"] == 50.0
    assert result["closest_modality_share"] == {"I": 50.0, "II": 0.0, "III": 0.0, "IV": 50.0}
    out.write_text("T-0\t21 42\nH-0\t-0.2\t21 42\n")
    assert sm.main(["evaluate", str(out), "--raw-dir", str(raw)]) == 2
    assert "1 hypotheses" in capsys.readouterr().err
    out.write_text("T-0\t21 43\nH-0\t-0.2\t21 42\nT-1\t83 64\nH-1\t-0.1\t83 64\n")
    assert sm.main(["evaluate", str(out), "--raw-dir", str(raw)]) == 2
    assert "no modality of test source 0" in capsys.readouterr().err


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        sm.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("make-data", "evaluate", "candidates"))


def test_two_modalities_and_merged_targets(tmp_path, capsys):
    raw = tmp_path / "raw"
    assert sm.main(["make-data", "--raw-dir", str(raw), "--num-tokens", "10", "--length", "6", "--modalities", "2",
                    "--train", "400", "--valid", "5", "--test", "30", "--quiet"]) == 0
    modalities = (raw / "train.modality").read_text().splitlines()
    assert set(modalities) == {"I", "II"} and 150 < modalities.count("I") < 250
    assert json.loads((raw / "meta.json").read_text())["modalities"] == 2
    sources = [[int(x) for x in line.split()] for line in (raw / "train.src").read_text().splitlines()]
    merged = [[int(x) for x in line.split()] for line in (raw / "train.merged").read_text().splitlines()]
    # App. A: I -> II (and III -> IV), so every merged target of a 2-modality set is modality II
    assert merged == [sm.modality_target(s, "II", 10) for s in sources]
    # evaluation compares with the two candidates only: a modality-III output matches neither fully
    test_src = (raw / "test.src").read_text().splitlines()
    hyps = [_line(sm.modality_target([int(x) for x in s.split()], "III", 10)) for s in test_src]
    hyp_file = tmp_path / "h.txt"
    hyp_file.write_text("".join(h + "\n" for h in hyps))
    assert sm.main(["evaluate", "--hyp", str(hyp_file), "--raw-dir", str(raw), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sequence_accuracy"] == 0.0 and set(result["closest_modality_share"]) == {"I", "II"}


@pytest.mark.parametrize("k", [2, 4])
def test_candidates_files_hold_exactly_the_k_modalities_of_each_source(tmp_path, k):
    raw = tmp_path / "raw"
    make = ["make-data", "--raw-dir", str(raw), "--num-tokens", "7", "--length", "5", "--modalities", str(k),
            "--train", "30", "--valid", "9", "--test", "6", "--quiet"]
    assert sm.main(make) == 0
    written = {}
    for split in sm.SPLITS:
        sources = (raw / f"{split}.src").read_text().splitlines()
        targets = (raw / f"{split}.tgt").read_text().splitlines()
        rows = [line.split("\t") for line in (raw / f"{split}.candidates").read_text().splitlines()]
        assert len(rows) == len(sources) == len(targets)
        for src, tgt, row in zip(sources, targets, rows):
            source = [int(x) for x in src.split()]
            assert row == [_line(sm.modality_target(source, m, 7)) for m in sm.MODALITIES[:k]]
            assert tgt in row
        written[split] = (raw / f"{split}.candidates").read_text()
    # data made before the files existed: `candidates` adds them and touches nothing else
    for split in sm.SPLITS:
        (raw / f"{split}.candidates").unlink()
    others = {p.name: os.path.getmtime(p) for p in raw.iterdir()}
    assert sm.main(["candidates", "--raw-dir", str(raw)]) == 0
    assert {s: (raw / f"{s}.candidates").read_text() for s in sm.SPLITS} == written
    assert {name: os.path.getmtime(raw / name) for name in others} == others
    stamp = os.path.getmtime(raw / "valid.candidates")
    assert sm.main(make) == 0  # cached data: the candidates stay as they are
    assert os.path.getmtime(raw / "valid.candidates") == stamp


def test_four_modality_merge_follows_appendix_a():
    src = [3, 7]
    assert sm.MERGED_MODALITY == {"I": "II", "II": "II", "III": "IV", "IV": "IV"}
    assert sm.modality_target(src, sm.MERGED_MODALITY["III"], 10) == [43, 37]  # IV: odd +4N, even +3N


def test_tiny_end_to_end(tmp_path, capsys):
    """make-data -> binarize -> a few hundred CMLM updates -> generate -> evaluate."""
    raw, data_bin = tmp_path / "raw", tmp_path / "bin"
    make = ["make-data", "--raw-dir", str(raw), "--dest-dir", str(data_bin), "--num-tokens", "20", "--length", "8",
            "--train", "200", "--valid", "20", "--test", "40", "--seed", "5", "--quiet"]
    assert sm.main(make) == 0
    meta = json.loads((raw / "meta.json").read_text())
    assert meta["sizes"] == {"train": 200, "valid": 20, "test": 40} and meta["num_tokens"] == 20
    assert len((raw / "dict.txt").read_text().splitlines()) == 100  # every symbol 1..5N
    sources = (raw / "test.src").read_text().splitlines()
    targets = (raw / "test.tgt").read_text().splitlines()
    modalities = (raw / "test.modality").read_text().splitlines()
    assert [sm.modality_target([int(x) for x in s.split()], m, 20) for s, m in zip(sources, modalities)] == [
        [int(x) for x in t.split()] for t in targets
    ]
    stamp = os.path.getmtime(data_bin / "test.src-tgt.tgt.bin")
    capsys.readouterr()
    assert sm.main(make) == 0  # cached: nothing rewritten
    assert "up to date" in capsys.readouterr().err
    assert os.path.getmtime(data_bin / "test.src-tgt.tgt.bin") == stamp

    save = str(tmp_path / "ckpt")
    # small batches, a high rate and one save at the end: ~220 updates in ~10 s
    run_train(train_args(str(data_bin), save, max_update=220,
                         extra=["--max-tokens", "600", "--lr", "1e-2", "--save-interval", "1000"]))
    capsys.readouterr()
    output = run_generate(
        [str(data_bin), "--user-dir", os.path.join(_helpers.ROOT, "nat_plugins"), "--task", "nat_translation",
         "--path", os.path.join(save, "checkpoint_last.pt"), "--gen-subset", "test", "--batch-size", "16",
         "--required-batch-size-multiple", "1", "--decode-iterations", "1", "--cpu"],
        capsys,
    )
    generated = tmp_path / "generate.out"
    generated.write_text(output)
    assert sm.main(["evaluate", str(generated), "--raw-dir", str(raw), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sentences"] == 40
    assert sum(result["closest_modality_share"].values()) == pytest.approx(100.0, abs=0.1)
    # An untrained model scores 0 here; 220 updates learn part of the offset
    # mapping: 11.9-13.4 % with training seeds 1-3 (seed 1 is used).
    assert result["token_accuracy"] > 5.0

    # Oracle through binarization and generation order: the T- lines, read
    # back as hypotheses, are exactly the recorded modality of each pair.
    references = {}
    for line in output.splitlines():
        if line.startswith("T-"):
            head, text = line.split("\t", 1)
            references[int(head[2:])] = text
    hyp_file = tmp_path / "refs.txt"
    hyp_file.write_text("".join(references[i] + "\n" for i in range(40)))
    assert sm.main(["evaluate", "--hyp", str(hyp_file), "--raw-dir", str(raw), "--json"]) == 0
    oracle = json.loads(capsys.readouterr().out)
    assert oracle["token_accuracy"] == 100.0 and oracle["sequence_accuracy"] == 100.0
    counts = collections.Counter(modalities)
    assert oracle["closest_modality_share"] == {m: round(100.0 * counts[m] / 40, 2) for m in sm.MODALITIES}
